"""Keep a trained agent's weights alone: `python export.py runs/NAME models/airstriker` (`--help`).

A training checkpoint holds the weights, the optimizer's slots (Adam keeps two per weight: three times the
size) and the training state. This copies the policy's weights alone into OUT/model.ckpt.*, which play.py,
evaluate.py and agent.py --init-weights load as they load any checkpoint. It is how the agent shipped in
models/airstriker was made (models/README.md).

Examples:
    python export.py runs/NAME models/airstriker      # the latest checkpoint of a run
    python export.py runs/NAME/checkpoints/000244 /tmp/agent
"""
import argparse
import os
import sys

from cli import HelpFormatter, add_verbose_argument, examples_epilog


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(description="Copy the policy weights of a checkpoint, without optimizer "
                                                 "slots or training state, into a folder of their own.",
                                     formatter_class=HelpFormatter, epilog=examples_epilog(__doc__))
    parser.add_argument("checkpoint", help="a run folder, a checkpoint folder or a TF checkpoint prefix")
    parser.add_argument("out", help="the folder to write (it must not exist, or be empty)")
    parser.add_argument("--models-dir", default="models", help="folder whose 'latest' file names the checkpoint "
                                                               "when CHECKPOINT is 'latest'")
    add_verbose_argument(parser)
    return parser


def export_weights(source_prefix: str, out_dir: str) -> str:
    """Write the A2CPolicy weights of the checkpoint `source_prefix` to out_dir/model.ckpt; -> that prefix.
    The observation is [96, 96, 4] uint8; the number of actions is read from the checkpoint's policy head."""
    import gymnasium as gym
    import numpy as np
    import tensorflow.compat.v1 as tf

    import env as envs
    from architecture import A2CPolicy
    from checkpoint import CHECKPOINT_FILE
    from model import Model
    stored = tf.train.load_checkpoint(source_prefix).get_variable_to_shape_map()
    nactions = stored.get("model/pi/w", [0, len(envs.ACTIONS)])[1]
    ob_space = gym.spaces.Box(0, 255, (envs.FRAME_SIZE, envs.FRAME_SIZE, envs.STACK), np.uint8)
    graph = tf.Graph()
    with graph.as_default(), tf.Session(graph=graph) as sess, sess.as_default():
        model = Model(A2CPolicy, ob_space, gym.spaces.Discrete(nactions), 1, 1, 0.0, 0.0, None)
        model.load(source_prefix)   # CheckpointError (one line) for a checkpoint of another network
        prefix = os.path.join(out_dir, CHECKPOINT_FILE)
        tf.train.Saver(model.params).save(sess, prefix, write_meta_graph=False, write_state=False)
    return prefix


def export(args) -> int:
    from checkpoint import CheckpointError, remove_tree, resolve_checkpoint
    source = resolve_checkpoint(args.checkpoint, args.models_dir, option="CHECKPOINT")
    if os.path.exists(args.out) and (not os.path.isdir(args.out) or os.listdir(args.out)):
        raise CheckpointError(f"{args.out!r} exists and is not an empty folder: give a new folder (nothing "
                              "is overwritten)")
    from cli import import_tensorflow
    import_tensorflow(args.verbose)
    tmp = os.path.abspath(args.out).rstrip("/") + f".tmp-{os.getpid()}"
    try:   # written aside, then renamed: a failure leaves no half-written folder
        export_weights(source, tmp)
        if os.path.isdir(args.out):
            os.rmdir(args.out)
        os.rename(tmp, args.out)
    except OSError as error:
        raise CheckpointError(f"could not write {args.out!r}: {error.strerror or error}") from None
    finally:
        if os.path.exists(tmp):
            remove_tree(tmp)
    size = sum(os.path.getsize(os.path.join(args.out, name)) for name in os.listdir(args.out))
    print(f"wrote the policy weights of {source} to {args.out} ({size / 2**20:.1f} MiB)")
    return 0


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    from errors import run_command
    return run_command(export, args)


if __name__ == "__main__":
    sys.exit(main())
