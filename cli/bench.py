"""`trustattr bench`: speed benchmarks of the kernels (not the trust benchmarks: see `trustattr eval`)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from trustattr.paths import atomic_path

app = typer.Typer(help="Speed benchmarks: kernels vs the baselines users would otherwise run, same process.",
                  no_args_is_help=True)

IntList = Annotated[str, typer.Option(help="comma-separated integers")]


def _ints(text: str, option: str) -> list[int]:
    try:
        return [int(v) for v in text.split(",") if v.strip()]
    except ValueError:
        raise typer.BadParameter(f"{option} must be comma-separated integers, got '{text}'") from None


def _words(text: str) -> list[str]:
    return [v.strip() for v in text.split(",") if v.strip()]


def _save(result: dict, out: Path | None, markdown: str) -> None:
    typer.echo("\n" + markdown)
    if out is not None:
        with atomic_path(out) as tmp:
            tmp.write_text(json.dumps(result, indent=2))
        typer.echo(f"\nwrote {out}")


@app.command()
def projection(
    rows: Annotated[str, typer.Option("--rows", help="batch sizes N, comma-separated")] = "1,8,64",
    features: Annotated[str, typer.Option("--features", help="input dims D, comma-separated")] = str(1 << 20),
    dims: Annotated[str, typer.Option("--k", help="sketch dims k, comma-separated")] = "2048",
    dtypes: Annotated[str, typer.Option(help="input dtypes: float32,bfloat16,float16,float64")] = "float32",
    kinds: Annotated[str, typer.Option(help="sketch kinds: rademacher,gaussian,sjlt")] = "rademacher,sjlt",
    peers: Annotated[bool, typer.Option(help="also time TRAK/dattri projectors when installed")] = True,
    max_matrix_gib: Annotated[float, typer.Option(help="largest materialized R for the torch.mm baseline")] = 9.0,
    out: Annotated[Path | None, typer.Option(help="write the raw results as JSON here")] = None,
) -> None:
    """`project` vs torch.mm with R materialized, TRAK's and dattri's projectors; % of measured peak."""
    from trustattr.perf import projection as bench
    from trustattr.perf.timing import machine_info

    args = bench.ProjectionBenchArguments(
        rows=_ints(rows, "--rows"), features=_ints(features, "--features"), dims=_ints(dims, "--k"),
        dtypes=_words(dtypes), kinds=_words(kinds), peers=peers, max_matrix_gib=max_matrix_gib,
    )
    typer.echo(f"machine: {machine_info()}")
    result = bench.run(args, log=typer.echo)
    result["machine"] = machine_info()
    _save(result, out, bench.markdown(result))


@app.command()
def kernels(
    quick: Annotated[bool, typer.Option(help="small shapes (seconds) instead of the issues' target shapes (minutes)")] = False,
    isa: Annotated[str, typer.Option(help="comma-separated CPU variants (avx512,avx2,baseline): run the ISA matrix, "
                                          "one process per variant, torch held to the same instruction set")] = "",
    threads: Annotated[int, typer.Option(help="with --isa: threads of both sides (0: torch's default)")] = 1,
    clock: Annotated[str, typer.Option(help="with --isa: cpu (process CPU time) or wall")] = "cpu",
    out: Annotated[Path | None, typer.Option(help="write the raw results as JSON here")] = None,
) -> None:
    """Every kernel benchmark: projection (issue 2), layer sketches and scoring (issue 5); with --isa,
    every kernel family against its torch formulation per instruction-set variant (issue 17)."""
    from trustattr.perf import layers, scoring
    from trustattr.perf import projection as proj
    from trustattr.perf.timing import machine_info

    if isa:
        from trustattr.perf import isa as isa_bench

        try:
            make = isa_bench.IsaBenchArguments.quick if quick else isa_bench.IsaBenchArguments
            isa_args = make(isas=_words(isa), threads=threads, clock=clock)
        except ValueError as exc:
            raise typer.BadParameter(str(exc)) from None
        typer.echo(f"machine: {machine_info()}")
        result = isa_bench.run(isa_args, log=typer.echo)
        _save(result, out, isa_bench.markdown(result))
        return

    if quick:
        proj_args = proj.ProjectionBenchArguments(rows=[8, 64], features=[1 << 16], dims=[512], peers=False)
        layer_args = layers.LayersBenchArguments(factored=[4, 128, 256, 256, 32, 32], outer=[4, 64, 128, 128, 512],
                                                 memory=False)
        score_args = scoring.ScoringBenchArguments(rows=100_000, k=256, score_rows=50_000, memory=False)
    else:
        proj_args, layer_args, score_args = (proj.ProjectionBenchArguments(), layers.LayersBenchArguments(),
                                             scoring.ScoringBenchArguments())
    typer.echo(f"machine: {machine_info()}")
    result = {
        "machine": machine_info(),
        "projection": proj.run(proj_args, log=typer.echo),
        "layers": layers.run(layer_args, log=typer.echo),
        "scoring": scoring.run(score_args, log=typer.echo),
    }
    tables = [proj.markdown(result["projection"]), layers.markdown(result["layers"]), scoring.markdown(result["scoring"])]
    _save(result, out, "\n\n".join(tables))


@app.command()
def attribution(
    models: Annotated[str, typer.Option(help="comma-separated: tiny, smol, checkpoint paths")] = "tiny,smol",
    pairs: Annotated[int, typer.Option(help="HH training pairs per pass")] = 32,
    reps: Annotated[int, typer.Option(help="alternating repetitions of each pass")] = 3,
    out: Annotated[Path | None, typer.Option(help="write the raw results as JSON here")] = None,
) -> None:
    """Attribution pairs/s (forward+backward+capture+projection) vs a plain forward+backward, same pairs."""
    from trustattr.perf import attribution as bench
    from trustattr.perf.timing import machine_info

    args = bench.AttributionBenchArguments(models=_words(models), pairs=pairs, reps=reps)
    typer.echo(f"machine: {machine_info()}")
    result = bench.run(args, log=typer.echo)
    _save(result, out, bench.markdown(result))
