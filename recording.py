"""Write game frames to a video file (.mp4 through ffmpeg, .gif through Pillow)."""
import os

import numpy as np

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


class VideoError(ValueError):
    """A video that cannot be written; the message says what to do."""


def check_output_file(path: str, option: str, extensions: tuple, error=ValueError) -> None:
    """Raise `error` early (before any playing) when the file an option names has an extension other than
    `extensions` or lies in a folder that does not exist."""
    if os.path.splitext(path)[1].lower() not in extensions:
        raise error(f"{option} {path!r}: the file must end in {' or '.join(extensions)}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise error(f"{option} {path!r}: the folder {folder} does not exist")


def check_video_path(path: str) -> None:
    """Raise VideoError for a --record file that cannot be written."""
    check_output_file(path, "--record", (".mp4", ".gif"), VideoError)


def write_video(path: str, frames, fps: int = GENESIS_FPS, gif_every: int = 3) -> int:
    """frames: sequence of [H, W, 3] uint8. A GIF keeps every `gif_every`-th frame: GIF delays are whole
    hundredths of a second, and 3 frames at 60 fps are exactly 5 of them, so it plays at the game's speed.
    (Pillow merges identical consecutive GIF frames into one longer frame.) Returns the frames handed over."""
    import imageio.v2 as imageio
    check_video_path(path)
    if os.path.splitext(path)[1].lower() == ".gif":
        frames = list(frames)[::gif_every]
        imageio.mimsave(path, [np.asarray(f) for f in frames], duration=1000.0 * gif_every / fps, loop=0)
        return len(frames)
    count = 0
    with imageio.get_writer(path, fps=fps, codec="libx264", quality=7, macro_block_size=1) as writer:
        for frame in frames:
            writer.append_data(np.asarray(frame))
            count += 1
    return count
