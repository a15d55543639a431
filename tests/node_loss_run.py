"""Run by tests/test_ray_cluster.py as a process of its own, as agent.py would run (its Ray client state, the
token among it, stays out of the test process):

    python tests/node_loss_run.py ADDRESS SESSION NODE_TEMP_DIR RUN_DIR

Joins the Ray cluster at ADDRESS through ray_backend (which finds the token as agent.py does) and trains two
updates of 2 workers x 1 fake env (tests/faulty_envs.py) with model.train. Early in update 2's rollout it
kills, with SIGKILL, every process of session SESSION: the node started with `ray start --temp-dir
NODE_TEMP_DIR`, as a machine that is lost. Prints one JSON line: the head's and that node's ids, the node of
each worker before and after, the restarts and the seconds of sampling of each update, the pids killed.
"""
import json
import os
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path[:0] = [HERE, os.path.dirname(HERE)]

NSTEPS, SEED, EPISODE = 200, 5, 7   # 200 steps: the rollout is still going when the node is killed


def node_ids(node_temp_dir: str) -> tuple:
    """(the head's node id, the id of the node whose temp dir is node_temp_dir)."""
    import ray
    nodes = [node for node in ray.nodes() if node["Alive"]]
    head = next(node["NodeID"] for node in nodes if "node:__internal_head__" in node["Resources"])
    other = next(node["NodeID"] for node in nodes if node["RayletSocketName"].startswith(node_temp_dir))
    return head, other


def kill_in_update(sampler, update: int, kill) -> None:
    """Make the sampler of `sampler` call kill() at the first step it reports of its `update`-th sample()."""
    make_sampler = sampler.sampler

    def make_killing_sampler(*args, **kwargs):
        runner = make_sampler(*args, **kwargs)
        sample, samples = runner.sample, []

        def sample_and_kill(on_step=None, stop=None):
            samples.append(1)
            if len(samples) != update:
                return sample(on_step, stop)
            done = []

            def kill_once_then_report(vector_steps):
                if not done:
                    done.append(kill())
                if on_step is not None:
                    on_step(vector_steps)
            return sample(kill_once_then_report, stop)
        runner.sample = sample_and_kill
        return runner
    sampler.sampler = make_killing_sampler


def main(address: str, session: int, node_temp_dir: str, run_dir: str) -> dict:
    import ray

    import faulty_envs
    import ray_backend
    import ray_nodes
    from architecture import A2CPolicy
    from config import TrainConfig
    from model import train
    sampler = ray_backend.RaySampler(faulty_envs.env_fns(2, EPISODE), 2, 1, seed=SEED, address=address,
                                     code_paths=[HERE])
    try:
        def workers_nodes() -> list:
            return [ray.get(worker.ready.remote())["node_id"] for worker in sampler.workers]
        head, other = node_ids(node_temp_dir)
        before, killed, stats = workers_nodes(), [], []
        kill_in_update(sampler, 2, lambda: killed.extend(ray_nodes.kill_session(session)))
        config = TrainConfig(num_envs=2, nsteps=NSTEPS, total_timesteps=2 * 2 * NSTEPS, noptepochs=1,
                             nminibatches=2, log_interval=1, seed=SEED, runs_dir=os.path.dirname(run_dir),
                             models_dir=os.path.join(os.path.dirname(run_dir), "models"), progress=False)
        with open(os.devnull, "w") as devnull:
            train(A2CPolicy, sampler, config, run_dir=run_dir, callback=stats.append, stream=devnull)
        return {"head": head, "other": other, "before": before, "after": workers_nodes(), "killed": killed,
                "restarts": [s["restarts"] for s in stats], "sample_s": [round(s["t_sample"], 1) for s in stats]}
    finally:
        sampler.close()


if __name__ == "__main__":
    print(json.dumps(main(sys.argv[1], int(sys.argv[2]), sys.argv[3], sys.argv[4])))
