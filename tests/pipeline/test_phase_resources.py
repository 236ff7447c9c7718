"""What each phase gets: the supernet the whole machine, search trials their share, retraining
its own setting; ``invnas validate`` shows it and a run that cannot be placed stops at once."""

from __future__ import annotations

import dataclasses
import json

import pytest
import torch

from invnas.cli import main
from invnas.config import Machine, PhaseResources, ResourcesConfig, plan_phases
from invnas.pipeline.context import TrialContext
from invnas.pipeline.ray_session import check_resources, largest_node
from invnas.rundir import RunDir, RunInfo, empty_results
from invnas.rundir.info import settings_digest
from invnas.space.loader import load_space_file
from invnas.strategy.objectives import objectives_of

from .conftest import TINY, write_space

LAPTOP = Machine(cpus=2.0)
GPU_BOX = Machine(cpus=16.0, gpus=4.0)


def test_the_supernet_gets_the_whole_machine_and_search_trials_their_share():
    plan = plan_phases(ResourcesConfig(cpus_per_trial=1), top_k=3, machine=LAPTOP)
    assert plan.supernet == PhaseResources(2.0, 0.0, 1, "whole machine")
    assert plan.search == PhaseResources(1.0, 0.0, 1, "per trial")
    assert plan.retrain == PhaseResources(1.0, 0.0, 1, "per trial")  # 3 trials side by side


def test_a_single_retrained_architecture_gets_the_whole_machine():
    plan = plan_phases(ResourcesConfig(), top_k=1, machine=LAPTOP)
    assert plan.retrain == PhaseResources(2.0, 0.0, 1, "whole machine")


def test_data_parallel_retraining_gets_the_whole_machine_one_architecture_at_a_time():
    plan = plan_phases(ResourcesConfig(train_workers=2), top_k=3, machine=LAPTOP)
    assert plan.retrain == PhaseResources(1.0, 0.0, 2, "whole machine")


def test_explicit_phase_settings_win():
    resources = ResourcesConfig(
        supernet_cpus=1.5, supernet_gpus=0, retrain_cpus=0.5, retrain_gpus=0.0
    )
    plan = plan_phases(resources, top_k=1, machine=GPU_BOX)
    assert plan.supernet == PhaseResources(1.5, 0.0, 1, "supernet_cpus")
    assert plan.retrain == PhaseResources(0.5, 0.0, 1, "retrain_cpus")


def test_every_gpu_of_the_machine_trains_the_supernet_by_default():
    plan = plan_phases(ResourcesConfig(), top_k=2, machine=GPU_BOX)
    assert plan.supernet == PhaseResources(4.0, 1.0, 4, "whole machine")  # one worker per GPU
    assert plan.retrain == PhaseResources(1.0, 0.0, 1, "per trial")


def test_workers_split_the_phase_share_or_take_their_own():
    plan = plan_phases(ResourcesConfig(train_workers=2), top_k=1, machine=LAPTOP)
    assert (plan.supernet.workers, plan.supernet.cpus, plan.supernet.total_cpus) == (2, 1.0, 2.0)
    own = ResourcesConfig(train_workers=3, cpus_per_worker=4, gpus_per_worker=1)
    plan = plan_phases(own, top_k=2, machine=GPU_BOX)
    assert plan.supernet == PhaseResources(4.0, 1.0, 3, "whole machine")
    assert plan.retrain == PhaseResources(4.0, 1.0, 3, "whole machine")  # one after another
    assert plan.search == PhaseResources(1.0, 0.0, 1, "per trial")


def test_workers_sharing_a_gpu_are_refused():
    with pytest.raises(ValueError, match="train_workers: 2 workers would share GPUs"):
        plan_phases(ResourcesConfig(train_workers=2), top_k=1, machine=Machine(8.0, 1.0))
    with pytest.raises(
        ValueError,
        match=r"9 workers would share GPUs \(0.444 GPU each\), and "
        r"the supernet phase has 16 CPUs and 4 GPUs \(the whole of this machine",
    ):
        plan_phases(ResourcesConfig(train_workers=9), top_k=1, machine=GPU_BOX)


def test_workers_get_a_whole_cpu_each_unless_told_to_share():
    with pytest.raises(ValueError) as refused:
        plan_phases(ResourcesConfig(train_workers=9), top_k=1, machine=LAPTOP)
    assert str(refused.value) == (
        "resources.train_workers: 9 workers need 1 CPU each (9 CPUs), and the supernet phase "
        "has 2 CPUs and 0 GPUs (the whole of this machine); ask for at most 2, give the phase "
        "more CPUs, or set resources.cpus_per_worker to let workers share CPUs"
    )
    with pytest.raises(ValueError, match="the retrain phase has 1 CPU and 0 GPUs \\(retrain_cpus"):
        plan_phases(ResourcesConfig(train_workers=2, retrain_cpus=1), top_k=3, machine=LAPTOP)
    shared = plan_phases(ResourcesConfig(train_workers=9, cpus_per_worker=0.2), 1, LAPTOP)
    assert shared.supernet == PhaseResources(0.2, 0.0, 9, "whole machine")
    assert plan_phases(ResourcesConfig(supernet_cpus=0.5), 1, LAPTOP).supernet.cpus == 0.5


def test_a_trial_uses_its_phase_share_for_threads_and_tune_resources():
    space, run = load_space_file(TINY)
    context = TrialContext(space, run, None)
    whole = context.for_phase(PhaseResources(2.0, 0.0, 1, "whole machine"))
    assert whole.trial_resources() == {"cpu": 2.0, "gpu": 0.0}
    previous = torch.get_num_threads()
    try:
        assert whole.setup() == torch.device("cpu") and torch.get_num_threads() == 2
    finally:
        torch.set_num_threads(previous)
    assert whole.latency_threads == 1  # as the search trials measure it
    parallel = context.for_phase(PhaseResources(1.0, 0.0, 2))
    assert parallel.trial_resources() == {"CPU": 0, "memory": 1}  # only the workers' driver


def test_validate_shows_what_each_phase_gets(tmp_path, capsys):
    space = write_space(tmp_path, resources={"train_workers": 2, "retrain_cpus": 2})
    assert main(["validate", "--json", str(space)]) == 0
    shares = json.loads(capsys.readouterr().out)["resources"]
    cpus = float(Machine.local().cpus)
    assert shares["supernet"] == {
        "workers": 2,
        "cpus_per_worker": cpus / 2,
        "gpus_per_worker": 0.0,
        "cpus": cpus,
        "gpus": 0.0,
        "source": "whole machine",
        "data_workers": {"memory": 0},
    }
    assert shares["search"]["workers"] == 1 and shares["search"]["cpus"] == 1.0
    assert shares["retrain"]["cpus"] == 2.0 and shares["retrain"]["source"] == "retrain_cpus"
    assert main(["validate", str(space)]) == 0
    lines = [x for x in capsys.readouterr().out.splitlines() if x.startswith("resources:")]
    assert len(lines) == 3
    assert f"2 workers of {cpus / 2:g} CPU" in lines[0] and "(whole machine)" in lines[0]
    assert "1 CPU per trial" in lines[1]
    assert "2 workers of 1 CPU = 2 CPUs (retrain_cpus); 0 DataLoader workers each" in lines[2]


def test_validate_refuses_workers_sharing_a_gpu(tmp_path, capsys):
    space = write_space(tmp_path, resources={"train_workers": 2, "supernet_gpus": 1})
    assert main(["validate", str(space)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "would share GPUs" in err[0]


def test_more_workers_than_the_cluster_places_is_refused(local_ray):
    machine = largest_node()
    assert machine.cpus == 2.0
    check_resources(plan_phases(ResourcesConfig(train_workers=2), 1, machine))  # fits
    too_many = plan_phases(ResourcesConfig(train_workers=3, cpus_per_worker=1), 1, machine)
    with pytest.raises(ValueError, match="train_workers: 3 workers of 1 CPUs .* can place 2"):
        check_resources(too_many)
    with pytest.raises(ValueError, match="resources.supernet_cpus: 4 CPUs"):
        check_resources(plan_phases(ResourcesConfig(supernet_cpus=4), 1, machine))


def test_the_cli_stops_before_any_work_when_workers_cannot_be_placed(
    local_ray, tmp_path, monkeypatch, capsys
):
    monkeypatch.chdir(tmp_path)
    space = write_space(tmp_path, resources={"cpus_per_worker": 1})
    code = main(["search", str(space), "--train-workers", "5", "--storage", str(tmp_path / "r")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith("invnas: resources.train_workers: 5 workers") and "place 2" in err[0]
    assert not any((tmp_path / "r").iterdir())
    assert main(["search", str(space), "--train-workers", "0"]) == 2
    assert "--train-workers: 0" in capsys.readouterr().err


def _too_many_workers() -> int:
    return int(Machine.local().cpus) + 1


def test_the_cli_refuses_more_workers_than_cpus_before_ray_starts(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    space = write_space(tmp_path)
    workers = _too_many_workers()
    storage = tmp_path / "r"
    code = main(["search", str(space), "--train-workers", str(workers), "--storage", str(storage)])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1
    assert err[0].startswith(f"invnas: resources.train_workers: {workers} workers need 1 CPU")
    assert f"has {Machine.local().cpus:g} CPU" in err[0]
    assert not storage.exists() or not any(storage.iterdir())


def test_validate_refuses_more_workers_than_cpus(tmp_path, capsys):
    space = write_space(tmp_path, resources={"train_workers": _too_many_workers()})
    assert main(["validate", str(space)]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "need 1 CPU each" in err[0] and "the supernet phase" in err[0]


def _started_run(tmp_path, space_file):
    """A run directory as ``invnas search`` leaves it before its first phase."""
    space, written = load_space_file(space_file)
    info = RunInfo(
        name="r",
        created="2026-01-01T00:00:00+00:00",
        seed=written.seed,
        storage=str(tmp_path / "runs"),
        space_source=str(space_file),
        data_root=str(space_file.parent),
        settings_digest=settings_digest(space, written),
    )
    run = RunDir.create(tmp_path / "runs" / "r", space_file.read_text(), info)
    run.write_results(empty_results("r", written, objectives_of(written.search)))
    return run


def test_resuming_with_a_bad_share_changes_nothing(tmp_path, capsys):
    space_file = write_space(tmp_path, resources={"train_workers": 2}, retrain={"top_k": 2})
    run = _started_run(tmp_path, space_file)
    before = {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.path.rglob("*")}
    code = main(["resume", str(run.path), "--cpus-per-trial", "0"])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and len(err) == 1 and "cpus_per_trial" in err[0].replace("-", "_"), err
    assert {p: (p.read_bytes(), p.stat().st_mtime_ns) for p in run.path.rglob("*")} == before


def test_channels_last_is_on_where_asked_or_for_cuda_convolutions(tmp_path):
    space, run = load_space_file(write_space(tmp_path, resources={"channels_last": True}))
    assert run.resources.channels_last == "on"
    cpu, cuda = torch.device("cpu"), torch.device("cuda")
    assert TrialContext(space, run, None).memory_format(cpu) == torch.channels_last
    space, run = load_space_file(TINY)  # auto; the tiny space has involutions
    context = TrialContext(space, run, None)
    assert run.resources.channels_last == "auto"
    assert context.memory_format(cpu) == context.memory_format(cuda) == torch.contiguous_format
    convs = dataclasses.replace(space, stages=tuple(_conv_only(s) for s in space.stages))
    assert TrialContext(convs, run, None).memory_format(cuda) == torch.channels_last
    assert TrialContext(convs, run, None).memory_format(cpu) == torch.contiguous_format


def _conv_only(stage):
    return dataclasses.replace(stage, ops=dataclasses.replace(stage.ops, involution=None))
