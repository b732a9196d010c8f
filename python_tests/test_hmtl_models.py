"""HMTL heads: HopeNet head, regression head, SSL branch at flag points 1-4."""
import pytest
import torch

from pyface.models.hmtl import HopeNetHead, PoseRegressionHead, SSLBranch, stage_channels
from pyface.models.resnet import resnet18, resnet50
from pyface.nn import hopenet_angles

n_params = lambda m: sum(p.numel() for p in m.parameters())  # noqa: E731


def stage_maps(trunk, x):
    x = trunk.stem(x)
    maps = []
    for i in range(1, 5):
        x = getattr(trunk, f"layer{i}")(x)
        maps.append(x)
    return maps


@pytest.fixture(scope="module")
def small_trunk():
    torch.manual_seed(0)
    trunk = resnet50(width=8).eval()
    with torch.no_grad():
        return trunk, stage_maps(trunk, torch.randn(2, 3, 64, 64))


def test_stage_channels_resnet50(small_trunk):
    t = small_trunk[0]
    assert [stage_channels(t, f) for f in (1, 2, 3, 4)] == [32, 64, 128, 256]   # 4 * width * 2^(f-1)
    assert [stage_channels(resnet18(width=16), f) for f in (1, 2, 3, 4)] == [16, 32, 64, 128]
    with pytest.raises(ValueError, match="flag point"):
        stage_channels(t, 5)


def test_hopenet_head_shapes_and_counts():
    h = HopeNetHead(2048, 66)
    assert n_params(h) == 3 * (2048 * 66 + 66) and h.dropout.p == 0.5
    logits = h.eval()(torch.randn(2, 2048, 4, 4))
    assert logits.shape == (2, 3, 66)
    assert hopenet_angles(logits).shape == (2, 3)
    assert HopeNetHead(2048, 198)(torch.randn(2, 2048, 7, 7)).shape == (2, 3, 198)
    # per-angle classifiers are independent: yaw logits do not depend on fc_pitch
    with torch.no_grad():
        h.fc_pitch.weight.add_(1.0)
    torch.testing.assert_close(h(torch.ones(1, 2048, 1, 1))[:, 0], h.fc_yaw(torch.ones(1, 2048)))
    assert PoseRegressionHead(64)(torch.randn(3, 64, 2, 2)).shape == (3, 3)


@pytest.mark.parametrize("flag", [1, 2, 3, 4])
@pytest.mark.parametrize("k,kinds,classes", [(2, ("puzzle",), 4), (3, ("puzzle",), 9), (2, ("rotation",), 4),
                                             (3, ("rotation", "puzzle"), 13)])
def test_ssl_branch_at_each_flag_point(flag, k, kinds, classes, small_trunk):
    trunk, maps = small_trunk
    c = stage_channels(trunk, flag)
    br = SSLBranch(c, k, kinds).eval()
    out = br(maps[flag - 1])
    assert out.shape == (2, k * k, classes)
    assert br.paths[br.kinds[0]].dropout.p == 0.2
    # the block keeps its skip connection: zeroing its last BN scale makes it relu(identity)
    blk = br.paths[br.kinds[0]].block
    with torch.no_grad():
        blk.bn3.weight.zero_()
        blk.bn3.bias.zero_()
    f = maps[flag - 1]
    torch.testing.assert_close(blk(f), torch.relu(f))
    if len(kinds) == 2:
        assert br.kinds == ("puzzle", "rotation") and br.classes("rotation") == slice(9, 13)
        # separate blocks per kind (the paper's "separate branches")
        assert br.paths["puzzle"].block is not br.paths["rotation"].block


def test_ssl_branch_parameter_counts_resnet50():
    # one bottleneck (c -> c/4 -> c/4 -> c) + BNs + the per-region heads, at ResNet50's
    # flag-point widths 256, 512, 1024, 2048
    for c in (256, 512, 1024, 2048):
        q = c // 4
        block = c * q + 9 * q * q + q * c + 2 * (q + q + c)
        assert n_params(SSLBranch(c, 3, ("puzzle",))) == block + c * 81 + 81


def test_image_rotation_probe():
    br = SSLBranch(64, 1, ("rotation",), block=False)
    assert br(torch.randn(5, 64, 3, 3)).shape == (5, 1, 4)
    assert n_params(br) == 64 * 4 + 4


def test_ssl_branch_bad_args():
    with pytest.raises(ValueError, match="k must be"):
        SSLBranch(256, 0)
    with pytest.raises(ValueError, match="1x1 puzzle"):
        SSLBranch(256, 1, ("puzzle",))
    with pytest.raises(ValueError, match="kinds"):
        SSLBranch(256, 2, ("jigsaw",))
    with pytest.raises(ValueError, match="divisible by 4"):
        SSLBranch(258, 2)
