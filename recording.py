"""Write game frames to a video file (.mp4 through ffmpeg, .gif through Pillow)."""
import os
import re
import sys

import numpy as np

from errors import VideoError  # noqa: F401  (raised here; recording.VideoError as before)
from outputs import check_output_file, replaced_on_success  # noqa: F401  (recording.check_output_file as before)

GENESIS_FPS = 60


class EpisodeFrames:
    """Frames [H, W, 3] uint8 grouped by episode, as env.RecordFrames hands them over."""

    def __init__(self):
        self.episodes = []   # [episode] of [frame]

    def new_episode(self, frame) -> None:
        self.episodes.append([frame])

    def add(self, frame) -> None:
        self.episodes[-1].append(frame)

    def frames(self, n_episodes: int) -> list:
        """The frames of the first n episodes (an env resets itself after its last one: that is left out)."""
        return [frame for episode in self.episodes[:n_episodes] for frame in episode]


def check_video_path(path: str) -> None:
    """Raise VideoError for a --record file that cannot be written."""
    check_output_file(path, "--record", (".mp4", ".gif"), VideoError)


def write_video(path: str, frames, fps: int = GENESIS_FPS, gif_every: int = 3) -> int:
    """frames: sequence of [H, W, 3] uint8. A GIF keeps every `gif_every`-th frame: GIF delays are whole
    hundredths of a second, and 3 frames at 60 fps are exactly 5 of them, so it plays at the game's speed.
    (Pillow merges identical consecutive GIF frames into one longer frame.) Returns the frames handed over."""
    check_video_path(path)
    with replaced_on_success(path, "--record", VideoError) as tmp:   # a failed write leaves no partial video
        return _encode(tmp, frames, fps, gif_every)


def _encode(path: str, frames, fps: int, gif_every: int) -> int:
    """Write the video file `path` (its extension says which format); returns the frames handed over."""
    import imageio.v2 as imageio
    if os.path.splitext(path)[1].lower() != ".gif":
        return _encode_mp4(path, frames, fps)
    frames = list(frames)[::gif_every]
    # encoded in memory, then written in one go: a full disk then fails this write, not Pillow's, which would
    # retry its flush when garbage-collected and print a second traceback
    data = imageio.mimsave("<bytes>", [np.asarray(f) for f in frames], format=".gif",
                           duration=1000.0 * gif_every / fps, loop=0)
    with open(path, "wb") as fh:
        fh.write(data)
    return len(frames)


def _encode_mp4(path: str, frames, fps: int) -> int:
    """H.264 through ffmpeg. ffmpeg writes its messages to file descriptor 2 itself: they are held back, and
    when the encoding fails its last one (e.g. 'Error closing file: No space left on device') becomes the
    reason of one OSError instead of lines of their own."""
    import imageio.v2 as imageio

    from cli import stderr_without
    messages = []

    def hold(line: str) -> bool:
        messages.append(line.strip())
        return True

    count = 0
    try:
        with stderr_without(hold):
            with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=1,
                                    ffmpeg_log_level="error") as writer:
                for frame in frames:
                    writer.append_data(np.asarray(frame))
                    count += 1
    except OSError:
        reason = next((m for m in reversed(messages) if m), None)
        if reason is None:
            raise
        raise OSError(re.sub(r"^(\[[^\]]*\]\s*)+", "", reason)) from None   # without '[out#0/mp4 @ 0x...]'
    if any(messages):
        print("\n".join(m for m in messages if m), file=sys.stderr)
    return count
