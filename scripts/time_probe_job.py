"""Wall and CPU time (one thread: CPU time is the work, wall time also counts the machine's
other load) of the probe job's work (``fit_and_score`` with the demo's probe settings from
config.yaml) on a committed toy checkpoint, one torch thread, as the demo's CPU job runs it.

    PYTHONPATH=src python scripts/time_probe_job.py checkpoints/toy_llava llava [--no-untrained]
"""

import argparse
import json
import time

import torch
import yaml

from vlmloc.models import load_adapter
from vlmloc.probes import ProbeSettings, fit_and_score, probe_images


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("path")
    ap.add_argument("family")
    ap.add_argument("--config", default="config.yaml")
    ap.add_argument("--no-untrained", action="store_true")
    ap.add_argument("--untrained-methods", nargs="*")
    args = ap.parse_args()
    torch.set_num_threads(1)
    cfg = yaml.safe_load(open(args.config))
    s = cfg["probes"]
    if args.no_untrained or args.untrained_methods is not None:
        s["controls"] = dict(s.get("controls", {}))
        s["controls"]["untrained"] = not args.no_untrained
        if args.untrained_methods:
            s["controls"]["untrained_methods"] = args.untrained_methods
    d = cfg["datasets"][s["generated_like"]]
    keys = (
        "colours",
        "shapes",
        "long_side",
        "aspect",
        "min_objects",
        "max_objects",
    )  # common.smk shapes_spec
    spec = {k: d[k] for k in keys if k in d}
    train, test = probe_images("generated", "generated", s["n_train"], s["n_test"], s["seed"], spec)
    adapter = load_adapter(args.family, args.path)
    settings = ProbeSettings.from_config(s, s["batch_size"], progress=False)
    t0, c0 = time.perf_counter(), time.process_time()
    run = fit_and_score(adapter, train, test, settings)
    total, cpu = time.perf_counter() - t0, time.process_time() - c0
    print(
        json.dumps(
            {
                "model": args.path,
                "untrained": settings.untrained_control
                and (settings.untrained_methods or settings.methods),
                "total_s": round(total, 2),
                "cpu_s": round(cpu, 2),
                "timing": [
                    {k: (round(v, 2) if isinstance(v, float) else v) for k, v in t.items()}
                    for t in run.timing
                ],
            }
        )
    )
    # LDA's test accuracy (mean of row and column) per site, trained and untrained, and the best
    # LLM layer chosen on validation / on test
    import pandas as pd

    from vlmloc.tables.probes import best_layer_table

    summary = pd.DataFrame(run.summary).assign(model=args.family)
    lda = summary[(summary["method"] == "lda") & (summary["split"] == "test")]
    print(
        lda.pivot_table(index="site", columns="variant", values="acc_mean", sort=False)
        .round(3)
        .to_string()
    )
    table = best_layer_table(summary, {}, [m for m in settings.methods if m != "ridge"], "acc_mean")
    print(
        table[
            [
                "method",
                "best_llm_layer",
                "best_llm_layer_on_test",
                "acc_best_llm",
                "acc_best_llm_validation",
                "untrained_method",
                "acc_untrained_best_llm",
                "acc_untrained_projector",
                "acc_untrained_best_vision",
                "best_vision_layer",
            ]
        ]
        .round(3)
        .to_string()
    )


if __name__ == "__main__":
    main()
