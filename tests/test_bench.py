"""The benchmark suite's own logic: the FLOP count and the README table."""

import keras
import pytest

from bench import peer_speed, report
from trainer import models


def keras_macs(model: keras.Model) -> int:
    """Multiply-adds of a model's conv, transposed-conv and dense layers, from the built Keras layers."""
    total = 0
    for layer in model.layers:
        if isinstance(layer, keras.layers.Conv2DTranspose):
            _, h, w, c = layer.input.shape
            total += h * w * c * layer.filters * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, keras.layers.Conv2D):
            _, h, w, _ = layer.output.shape
            total += h * w * layer.input.shape[-1] * layer.filters * layer.kernel_size[0] * layer.kernel_size[1]
        elif isinstance(layer, keras.layers.Dense):
            total += layer.input.shape[-1] * layer.units
        elif hasattr(layer, "linear"):  # ProjectionLogit
            total += layer.linear.kernel.shape[0]
    return total


@pytest.mark.parametrize("resolution,channels", [(32, 1), (64, 3)])
def test_nominal_flops_match_the_models(resolution, channels):
    g = keras_macs(models.build_generator(resolution, channels, 100, 1.0, 0))
    d = keras_macs(models.build_discriminator(resolution, channels, 1.0, 0))
    assert peer_speed.step_flops(resolution, channels, 1.0, 100) == 2.0 * (3 * g + 9 * d)


def test_readme_performance_table_matches_the_committed_results():
    assert report.main(["--check"]) == 0
    names = {row[0] for row in report.rows()}
    assert {
        "train step",
        "`dcgan train` vs PyTorch, own processes",
        "augmentation vs ImageDataGenerator",
        "sampler vs generator alone",
        "checkpoint overhead (step time)",
        "input pipeline vs consumption",
    } <= names


@pytest.mark.parametrize(
    "method,url,kind",
    [
        ("GET", "http://h/storage/v1/b/bench/o?prefix=out%2F&startOffset=x", "list"),
        ("GET", "http://h/storage/v1/b/bench/o/out%2Fplan.json?alt=media", "download"),
        ("GET", "http://h/download/storage/v1/b/bench/o/out%2Fplan.json?alt=media", "download"),
        ("GET", "http://h/storage/v1/b/bench/o/out%2Fplan.json", "metadata"),
        ("POST", "http://h/upload/storage/v1/b/bench/o?uploadType=multipart", "upload"),
        ("DELETE", "http://h/storage/v1/b/bench/o/out%2F.write-probe", "delete"),
    ],
)
def test_the_scale_benchmark_counts_each_kind_of_request(method, url, kind):
    from bench import scale_speed

    assert scale_speed.RequestCounter.kind(method, url, {}) == kind
