"""The CPU-side parts of experiments/gpu_check.py (it has never run on a GPU here): the backend
benchmark, the supernet epoch and the tables run on the CPU, and without a GPU it stops."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest
import torch

SCRIPT = Path(__file__).resolve().parent.parent / "experiments" / "gpu_check.py"


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_backend_rows_time_and_compare_with_the_reference(gpu_check):
    cpu = torch.device("cpu")
    rows = gpu_check.bench_backends(cpu, 2, 2, stages=[(32, 8)], backends=("torch", "cupy"))
    assert [(r["dtype"], r["backend"]) for r in rows] == [
        ("float32", "torch"),
        ("float32", "cupy"),
        ("bfloat16", "torch"),
        ("bfloat16", "cupy"),
    ]
    fp32, bf16 = rows[0], rows[2]
    assert fp32["fwd_ms"] > 0 and fp32["fwd_bwd_ms"] > 0
    assert fp32["max_abs_error"] < 1e-4 < bf16["max_abs_error"] < 0.5
    assert "error" in rows[1] and rows[1]["stage"] == "C32 8x8"  # no cupy on CPU tensors


def test_a_supernet_epoch_reports_speed_and_loss(gpu_check):
    row = gpu_check.supernet_epoch(torch.device("cpu"), None)
    assert row["precision"] == "float32" and row["images_per_s"] > 0
    assert 0 < row["train_loss"] < 10


def test_the_tables_show_every_row(gpu_check):
    result = {
        "gpu": "H200",
        "machine": "x86_64",
        "gpu_tests": {"exit_code": 0, "summary": "3 passed"},
        "involution": [
            {
                "stage": "C64 56x56",
                "dtype": "float32",
                "backend": "cupy",
                "fwd_ms": 1.5,
                "fwd_bwd_ms": 4.0,
                "max_abs_error": 1e-6,
            },
            {"stage": "C64 56x56", "dtype": "float32", "backend": "x", "error": "KeyError: x"},
        ],
        "supernet": [{"precision": "bfloat16", "images_per_s": 900.0, "train_loss": 2.1}],
    }
    table = gpu_check.markdown(result)
    assert "| C64 56x56 | float32 | cupy | 1.5 | 4.0 | 1.00e-06 |" in table
    assert "KeyError: x" in table and "| bfloat16 | 900.0 | 2.1000 |" in table


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the refusal without a GPU")
def test_without_a_gpu_it_says_so(gpu_check, monkeypatch, capsys):
    monkeypatch.setattr(sys, "argv", ["gpu_check.py"])
    assert gpu_check.main() == 2
    assert "no CUDA GPU" in capsys.readouterr().err
