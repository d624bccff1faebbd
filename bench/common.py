"""Timing and reporting shared by the benchmarks."""

from __future__ import annotations

import json
import os
import platform
import statistics
import time

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def parse_flags(argv: list[str], defaults: dict) -> dict:
    values = dict(defaults)
    for arg in argv:
        key, _, raw = arg.lstrip("-").partition("=")
        if key not in values:
            raise SystemExit(f"unknown flag --{key}; known: {', '.join('--' + k for k in values)}")
        kind = type(values[key])
        values[key] = (raw.lower() in ("1", "true", "yes")) if kind is bool else kind(raw)
    return values


def round_robin(variants: dict, run_once, repeats: int) -> dict[str, list[float]]:
    """Times run_once(variant) for each variant in turn, `repeats` rounds."""
    samples = {name: [] for name in variants}
    for _ in range(repeats):
        for name, variant in variants.items():
            started = time.perf_counter()
            run_once(variant)
            samples[name].append(time.perf_counter() - started)
    return samples


def compare(variants: dict, images: int, repeats: int) -> tuple[dict[str, float], dict[str, list[float]]]:
    """Times each no-argument callable round-robin; returns (median images/s, raw seconds)."""
    samples = round_robin(variants, lambda run: run(), repeats)
    return {name: images / median(times) for name, times in samples.items()}, samples


def print_rates(rates: dict[str, float]) -> None:
    width = max(len(name) for name in rates) + 2
    for name, rate in rates.items():
        print(f"{name:<{width}} {rate:>10.1f} img/s")


def cpu_description() -> str:
    """'AMD EPYC (avx2)': the CPU's model name and its widest vector and matrix extensions (Linux; '?' where
    unknown), which decide TensorFlow's and PyTorch's kernels more than the core count does."""
    from trainer import distribute  # the product's /proc/cpuinfo reader

    flags = distribute.cpu_flags() or set()
    model = "?"
    try:
        with open("/proc/cpuinfo", errors="replace") as f:
            model = next((line.split(":", 1)[1].strip() for line in f if line.startswith("model name")), "?")
    except OSError:
        pass
    wanted = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f in flags]
    return f"{model} ({', '.join(wanted) or 'no avx2'})"


def machine() -> dict:
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    names = [tf.config.experimental.get_device_details(g).get("device_name", "GPU") for g in gpus]
    return {
        "host": platform.node(),
        "cpu_count": os.cpu_count(),
        "processor": platform.processor() or platform.machine(),
        "cpu": cpu_description(),
        "gpus": names,
        "tensorflow": tf.__version__,
    }


def write(name: str, payload: dict) -> str:
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"{name}.json")
    with open(path, "w") as f:
        json.dump(payload, f, indent=2)
    return path


def median(values: list[float]) -> float:
    return statistics.median(values)
