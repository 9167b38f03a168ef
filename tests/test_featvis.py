"""Feature visualisation, dataset examples and LayerNMF (rewardlab.interpret.featvis) on nets with known answers."""

import numpy as np
import pytest
import torch
from torch import nn

from rewardlab.errors import RewardLabError
from rewardlab.interpret import featvis as fv

ROWS, COLS = slice(20, 36), slice(10, 26)  # the rewarded region: rows 20-35, cols 10-25


def region_mask(size: int = 64) -> np.ndarray:
    m = np.zeros((size, size))
    m[ROWS, COLS] = 1.0
    return m


class RegionNet(nn.Module):
    """reward = mean green over the region - mean green elsewhere (in [0, 1] units); layer 'colour' is R, G, B."""

    def __init__(self):
        super().__init__()
        self.colour = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.colour.weight.copy_(torch.eye(3)[:, :, None, None])
        self.relu = nn.ReLU()
        m = torch.as_tensor(region_mask(), dtype=torch.float32)
        self.register_buffer("w", m / m.sum() - (1 - m) / (1 - m).sum())

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        return (self.relu(self.colour(images / 255.0))[:, 1] * self.w).sum(dim=(1, 2))


def region_reward_np(frames: np.ndarray) -> np.ndarray:
    g, m = frames[:, 1].astype(np.float64) / 255.0, region_mask()
    return (g * m).sum((1, 2)) / m.sum() - (g * (1 - m)).sum((1, 2)) / (1 - m).sum()


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One torch thread: these tiny nets run fastest so, and a busy machine does not slow them 30-fold."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(n)


def random_frames(n: int, seed: int, size: int = 64) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 256, (n, 3, size, size), dtype=np.uint8)


def test_reward_max_brightens_and_min_darkens_the_region():
    net = RegionNet()
    vis = fv.visualise(net, net, fv.reward_objective(), steps=120, seed=0)
    assert vis.images.shape == (2, 3, 64, 64) and vis.images.dtype == np.uint8
    assert vis.labels == ["reward max", "reward min"] and vis.history.shape == (120, 2)
    m = region_mask().astype(bool)
    green = vis.images[:, 1].astype(float)
    inside, outside = green[:, m].mean(1), green[:, ~m].mean(1)
    assert inside[0] - outside[0] > 100, (inside, outside)  # max: region clearly greener than the rest
    assert outside[1] - inside[1] > 100, (inside, outside)  # min: region clearly darker
    # the reported objective is the net's reward (signed) on the returned images
    r = region_reward_np(vis.images)
    np.testing.assert_allclose(vis.final, [r[0], -r[1]], atol=2e-3)
    assert vis.final[0] > 0.4 and vis.final[1] > 0.4
    assert vis.history[-10:].mean(0).min() > vis.history[:10].mean(0).max() + 0.3  # it climbed
    assert vis.seconds > 0


def test_channel_visualisations_take_their_channels_colour_and_are_seeded():
    net = RegionNet()
    obj = fv.channel_objective("colour", [0, 1, 2])
    vis = fv.visualise(net, net, obj, steps=128, seed=3)
    assert vis.labels == ["colour ch 0", "colour ch 1", "colour ch 2"]
    means = vis.images.astype(float).mean(axis=(2, 3))  # (image, colour) in [0, 255]
    for b in range(3):
        assert means[b, b] - np.delete(means[b], b).max() > 8, means  # image b is dominated by colour b
    redness = means[:, 0] - means[:, 1:].mean(1)
    blueness = means[:, 2] - means[:, :2].mean(1)
    assert redness[0] - redness[2] > 30 and blueness[2] - blueness[0] > 30, means  # ch 0 redder, ch 2 bluer
    # the objective is channel b's mean activation = mean of colour b / 255; it rose from grey (0.5)
    np.testing.assert_allclose(vis.final, means[[0, 1, 2], [0, 1, 2]] / 255.0, atol=2e-3)
    assert vis.final.min() > 0.75
    again = fv.visualise(net, net, obj, steps=128, seed=3)
    np.testing.assert_array_equal(again.images, vis.images)
    other = fv.visualise(net, net, obj, steps=128, seed=4)
    assert not np.array_equal(other.images, vis.images)


def test_direction_objective_is_channel_means_dot_direction():
    net = RegionNet()
    d = np.array([[1.0, 0.0, 1.0], [0.0, 1.0, 0.0]], np.float32)  # magenta, green
    vis = fv.visualise(net, net, fv.direction_objective("colour", d), steps=128, seed=1)
    means = vis.images.astype(float).mean(axis=(2, 3)) / 255.0
    np.testing.assert_allclose(vis.final, (means * d).sum(1), atol=3e-3)
    assert means[0, 0] > means[0, 1] + 0.04 and means[0, 2] > means[0, 1] + 0.04  # magenta: R and B over G
    assert means[1, 1] > means[1, [0, 2]].max() + 0.04  # green: G over R and B


def test_random_transform_keeps_size_and_identity_is_exact():
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 64, 48, generator=gen)
    out = fv.random_transform(x, gen)
    assert out.shape == x.shape
    same = fv.random_transform(x, gen, jitter=(0.0, 0.0), scale=(1.0, 1.0), degrees=0.0)
    torch.testing.assert_close(same, x, atol=1e-5, rtol=0)
    assert (out - x).abs().mean() > 0.05
    # geometry on a 6x6 square in a 32x32 frame, black fill: jitter moves its centre by at most the jitter sum,
    # scale 2 quadruples its area, rotation about the centre keeps a centred square's area and centre
    sq = torch.zeros(64, 1, 32, 32)
    sq[:, :, 13:19, 13:19] = 1.0
    yy, xx = torch.meshgrid(torch.arange(32.0), torch.arange(32.0), indexing="ij")

    def centre(img):
        m = img[:, 0].sum((1, 2))
        return torch.stack([(img[:, 0] * xx).sum((1, 2)) / m, (img[:, 0] * yy).sum((1, 2)) / m], 1) - 15.5

    moved = centre(fv.random_transform(sq, gen, jitter=(3.0, 0.0), scale=(1.0, 1.0), degrees=0.0, fill=0.0))
    assert moved.abs().max() <= 3.0 + 1e-4 and moved.abs().max() > 2.5
    moved = centre(fv.random_transform(sq, gen, jitter=(0.0, 2.0), scale=(1.0, 1.0), degrees=0.0, fill=0.0))
    assert moved.abs().max() <= 2.0 + 1e-4 and moved.abs().max() > 1.5
    big = fv.random_transform(sq, gen, jitter=(0.0, 0.0), scale=(2.0, 2.0), degrees=0.0, fill=0.0)
    torch.testing.assert_close(big.sum((1, 2, 3)), torch.full((64,), 144.0), atol=1e-3, rtol=0)
    turned = fv.random_transform(sq, gen, jitter=(0.0, 0.0), scale=(1.0, 1.0), degrees=45.0, fill=0.0)
    assert (turned.sum((1, 2, 3)) - 36).abs().max() < 1.5 and centre(turned).abs().max() < 0.05
    assert (turned - sq).abs().sum((1, 2, 3)).max() > 5  # it did rotate
    # on a non-square frame a rotated square stays a square: equal spread along x and y (pixel-space rotation)
    wide = torch.zeros(16, 1, 32, 64)
    wide[:, :, 11:21, 27:37] = 1.0
    turned = fv.random_transform(wide, gen, jitter=(0.0, 0.0), scale=(1.0, 1.0), degrees=45.0, fill=0.0)[:, 0]
    ys, xs = torch.meshgrid(torch.arange(32.0), torch.arange(64.0), indexing="ij")
    m = turned.sum((1, 2))
    var_x = (turned * (xs - 31.5) ** 2).sum((1, 2)) / m
    var_y = (turned * (ys - 15.5) ** 2).sum((1, 2)) / m
    torch.testing.assert_close(var_x, var_y, atol=0.1, rtol=0)


def test_top_k_breaks_ties_by_lower_index():
    scores = np.random.default_rng(0).integers(0, 5, (200, 3)).astype(float)
    idx = fv.top_k(scores, 20)
    assert idx.shape == (3, 20)
    for u in range(3):
        np.testing.assert_array_equal(idx[u], np.argsort(-scores[:, u], kind="stable")[:20])
        low = fv.top_k(scores, 7, largest=False)[u]
        np.testing.assert_array_equal(low, np.argsort(scores[:, u], kind="stable")[:7])
    assert fv.top_k(scores[:4], 10).shape == (3, 4)  # k larger than the set: every frame


def test_dataset_examples_rank_exactly_like_numpy():
    net = RegionNet()
    frames = random_frames(300, seed=1)
    r = region_reward_np(frames)
    s = np.sort(r)
    assert np.diff(s[:6]).min() > 1e-5 and np.diff(s[-11:]).min() > 1e-5  # no near-ties where ranked
    ex = fv.dataset_examples(net, net, None, frames, k=10, batch_size=64)
    np.testing.assert_array_equal(ex.indices[0], np.argsort(-r)[:10])
    np.testing.assert_allclose(ex.scores[0], r[np.argsort(-r)[:10]], atol=1e-6)
    low = fv.dataset_examples(net, net, None, frames, k=5, largest=False, batch_size=64)
    np.testing.assert_array_equal(low.indices[0], np.argsort(r)[:5])
    assert ex.maps is None and ex.frames.shape == (1, 10, 3, 64, 64)
    np.testing.assert_array_equal(ex.frames[0, 3], frames[ex.indices[0, 3]])

    # layer 'colour': channel c's mean (max) is the frame's mean (max) of colour c / 255
    ex = fv.dataset_examples(net, net, "colour", frames, k=6, batch_size=64)
    mean = frames.astype(np.float64).mean(axis=(2, 3))
    assert np.diff(np.sort(mean, axis=0)[-7:], axis=0).min() > 1e-5
    for c in range(3):
        np.testing.assert_array_equal(ex.indices[c], np.argsort(-mean[:, c])[:6])
    # its maps are the channel's activation upsampled (identity here: the colour plane / 255)
    np.testing.assert_allclose(ex.maps[2, 0], frames[ex.indices[2, 0], 2] / 255.0, atol=1e-6)
    peaks = np.random.default_rng(2).integers(0, 150, (150, 3, 64, 64)).astype(np.uint8)
    peaks[np.arange(100), 1, 5, 7] = 150 + np.arange(100)  # distinct maxima 150..249 for frames 0-99
    exm = fv.dataset_examples(net, net, "colour", peaks, k=4, reduce="max")
    mx = peaks[:, 1].max(axis=(1, 2)).astype(float)
    np.testing.assert_array_equal(exm.indices[1], np.argsort(-mx, kind="stable")[:4])
    np.testing.assert_array_equal(exm.indices[1], [99, 98, 97, 96])


def test_layer_nmf_recovers_an_exact_rank_3_product():
    rng = np.random.default_rng(0)
    w = rng.gamma(1.0, 1.0, (40 * 6 * 6, 3))
    h = rng.gamma(1.0, 1.0, (3, 12))
    acts = (w @ h).reshape(40, 6, 6, 12).transpose(0, 3, 1, 2)
    nmf = fv.layer_nmf(acts, 3, seed=0)
    assert nmf.error < 0.02, nmf.error
    assert nmf.directions.shape == (3, 12) and nmf.maps.shape == (40, 3, 6, 6)
    np.testing.assert_allclose(np.linalg.norm(nmf.directions, axis=1), 1.0, atol=1e-5)
    recon = np.einsum("nkhw,kc->nchw", nmf.maps, nmf.directions)
    assert np.linalg.norm(recon - acts) / np.linalg.norm(acts) == pytest.approx(nmf.error, abs=1e-4)
    # each true direction is matched by a found one (cosine > 0.99)
    true = h / np.linalg.norm(h, axis=1, keepdims=True)
    assert (true @ nmf.directions.T).max(axis=1).min() > 0.99
    assert fv.layer_nmf(acts, 1, seed=0).error > 0.1


def test_layer_nmf_error_falls_with_more_factors_on_conv_activations():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 16, 5, stride=2), nn.ReLU(), nn.Conv2d(16, 16, 3, stride=2), nn.ReLU())
    frames = random_frames(16, seed=5)
    acts = fv.layer_activations(lambda x: net(x / 255.0), net, "3", frames, batch_size=10)
    assert acts.shape == (16, 16, 14, 14) and acts.min() >= 0
    errors = [fv.layer_nmf(acts, k, seed=0).error for k in (1, 2, 4, 8)]
    assert all(a > b for a, b in zip(errors, errors[1:])), errors
    assert 0 < errors[-1] < errors[0] < 1
    # factor examples rank frames by the mean of the factor's map
    nmf = fv.layer_nmf(acts, 4, seed=0)
    ex = fv.factor_examples(nmf, frames, k=3)
    np.testing.assert_array_equal(ex.indices[2], np.argsort(-nmf.maps[:, 2].mean(axis=(1, 2)))[:3])
    assert ex.maps.shape == (4, 3, 64, 64)


def test_layer_activations_of_a_flat_layer_are_n_c_1_1():
    net = nn.Sequential(nn.Flatten(), nn.Linear(3 * 8 * 8, 5), nn.ReLU(), nn.Linear(5, 1), nn.Flatten(0))
    frames = random_frames(7, seed=0, size=8)
    acts = fv.layer_activations(net, net, "2", frames, batch_size=3)
    assert acts.shape == (7, 5, 1, 1)
    with torch.no_grad():
        want = torch.relu(net[1](torch.as_tensor(frames).float().flatten(1))).numpy()
    np.testing.assert_allclose(acts[:, :, 0, 0], want, rtol=1e-5, atol=1e-4)


def test_user_mistakes_raise_one_clear_error():
    net = RegionNet()
    assert fv.layer_names(net) == ["colour", "relu"]
    with pytest.raises(RewardLabError, match="layer 'conv9' is not in this model; its layers are: colour, relu"):
        fv.get_layer(net, "conv9")
    with pytest.raises(RewardLabError, match="its layers are: colour, relu"):
        fv.layer_activations(net, net, "conv9", random_frames(2, 0))
    with pytest.raises(RewardLabError, match="channel 7 is out of range: layer 'colour' has 3 channels"):
        fv.visualise(net, net, fv.channel_objective("colour", [0, 7]), steps=1)
    with pytest.raises(RewardLabError, match="uint8"):
        fv.layer_activations(net, net, "colour", random_frames(2, 0).astype(np.float32))
    with pytest.raises(RewardLabError, match="non-negative"):
        fv.layer_nmf(-np.ones((2, 3, 4, 4)), 2)
    with pytest.raises(RewardLabError, match="one reward per image"):
        fv.visualise(lambda x: x.mean((2, 3)), None, fv.reward_objective(), steps=1)
    twice = lambda x: net(x) + net(x)  # noqa: E731
    with pytest.raises(RewardLabError, match="ran 2 times"):
        fv.layer_activations(twice, net, "colour", random_frames(2, 0))


def test_figures_write_pngs(tmp_path):
    net = RegionNet()
    frames = random_frames(12, seed=0)
    vis = fv.visualise(net, net, fv.channel_objective("colour"), steps=3)
    assert len(vis.images) == 3  # channels=None: every channel
    p = fv.plot_feature_vis(vis, tmp_path / "vis")
    ex = fv.dataset_examples(net, net, "colour", frames, k=3)
    p2 = fv.plot_dataset_examples(ex, tmp_path / "examples.png")
    acts = fv.layer_activations(net, net, "relu", frames)
    nmf = fv.layer_nmf(acts, 2)
    fvis = fv.visualise(net, net, fv.direction_objective("relu", nmf.directions), steps=3)
    p3 = fv.plot_layer_nmf(fvis, fv.factor_examples(nmf, frames, k=3), tmp_path / "nmf")
    for path in (p, p2, p3):
        assert path.suffix == ".png" and path.stat().st_size > 1000 and path.with_suffix(".pdf").exists()
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
