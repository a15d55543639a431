"""Recorded videos decode back to the frames handed over: their number and the game's frame size."""
import numpy as np
import pytest

import env as envs
from recording import EpisodeFrames, VideoError, check_video_path, write_video

STEPS = 30                        # agent steps of the recorded clip
AIRSTRIKER_FRAME = (224, 320, 3)  # height, width, RGB


@pytest.fixture(scope="module")
def airstriker_frames():
    """Every emulator frame [224, 320, 3] uint8 of the reset and STEPS agent steps of Airstriker."""
    sink = EpisodeFrames()
    game = envs.make_level(envs.DEFAULT_GAME, envs.DEFAULT_STATE, frame_sink=sink)
    try:
        game.reset(seed=0)
        for step in range(STEPS):
            _obs, _reward, terminated, truncated, _info = game.step(step % game.action_space.n)
            assert not (terminated or truncated)
    finally:
        game.close()
    assert len(sink.episodes) == 1
    return sink.frames(1)


def decode(path) -> list:
    """A video file -> its frames, each [H, W, 3] uint8 (imageio: ffmpeg for .mp4, Pillow for .gif)."""
    import imageio.v2 as imageio
    with imageio.get_reader(str(path)) as reader:
        return [np.asarray(frame)[..., :3] for frame in reader]


def assert_same_picture(decoded, sources, index) -> None:
    """decoded [H, W, 3] uint8 is frame `index` of sources [n] of [H, W, 3] uint8: of all the source frames
    (every one differs: the stars scroll) it is nearest to that one (or, for a lossy codec, a neighbour),
    and its coding error is under half the picture's content (Airstriker's space is mostly black)."""
    errors = np.abs(np.stack(sources).astype(np.int16) - decoded.astype(np.int16)).mean(axis=(1, 2, 3))  # [n]
    assert abs(int(errors.argmin()) - index) <= 1, f"frame {index} looks like source frame {errors.argmin()}"
    assert errors[index] < 0.5 * sources[index].mean(), f"frame {index}: mean error {errors[index]:.2f}"


def test_every_emulator_frame_reaches_the_sink(airstriker_frames):
    # the reset's frame, then 4 emulator frames per agent step (frame skip): the video plays at game speed
    assert len(airstriker_frames) == 1 + envs.FRAME_SKIP * STEPS
    assert all(frame.shape == AIRSTRIKER_FRAME and frame.dtype == np.uint8 for frame in airstriker_frames)
    assert len({frame.tobytes() for frame in airstriker_frames}) == len(airstriker_frames)   # the stars scroll


def test_mp4_decodes_to_the_frames_handed_over(tmp_path, airstriker_frames):
    path = tmp_path / "clip.mp4"
    assert write_video(str(path), airstriker_frames) == len(airstriker_frames)
    decoded = decode(path)
    assert len(decoded) == len(airstriker_frames)
    assert decoded[0].shape == AIRSTRIKER_FRAME
    for index in (0, len(decoded) // 2, len(decoded) - 1):     # lossy, but the same pictures in the same order
        assert_same_picture(decoded[index], airstriker_frames, index)


def test_gif_keeps_every_second_frame(tmp_path, airstriker_frames):
    # (Pillow merges identical consecutive frames into one longer one: these frames all differ)
    path = tmp_path / "clip.gif"
    kept = airstriker_frames[::2]
    assert write_video(str(path), airstriker_frames, gif_every=2) == len(kept)
    decoded = decode(path)
    assert len(decoded) == len(kept)
    assert decoded[0].shape == AIRSTRIKER_FRAME
    for index in (0, len(kept) - 1):
        assert_same_picture(decoded[index], kept, index)


def test_frames_leave_out_the_episode_begun_by_the_automatic_reset():
    sink = EpisodeFrames()
    for episode in range(3):
        sink.new_episode(np.full((2, 2, 3), episode, np.uint8))
        sink.add(np.full((2, 2, 3), episode, np.uint8))
    assert [int(frame[0, 0, 0]) for frame in sink.frames(2)] == [0, 0, 1, 1]


@pytest.mark.parametrize("name, message", [("clip.avi", "must end in .mp4 or .gif"),
                                           ("missing/clip.mp4", "does not exist")])
def test_unusable_video_paths_are_refused_before_playing(tmp_path, name, message):
    with pytest.raises(VideoError, match=message):
        check_video_path(str(tmp_path / name))
