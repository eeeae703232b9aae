"""``ceustream journal list | show EXAM | rescore EXAM``: exams journaled on this machine,
one line per run (each run of an exam has its own folder; runs never mix)."""

from __future__ import annotations

import json

from . import common


def add_parser(sub) -> None:
    p = common.command(sub, "journal", "exams journaled on this machine", codes=(0, 1, 2, 3, 4, 5),
                       description="exams journaled on this machine: `list` their runs (an "
                       "interrupted run shows as such), `show` one, or `rescore` one from its "
                       "stored slots (with any model or backend)")
    p.add_argument("action", choices=["list", "show", "rescore"], help="list, show or rescore")
    p.add_argument("exam", nargs="?", type=common.exam_id,
                   help="the exam id (show, rescore; list: only this exam's runs)")
    p.add_argument("--run", type=common.exam_id,
                   help="show/rescore this run of the exam (default: the newest)")
    p.add_argument("--json", action="store_true", help="rescore: print the result as JSON")
    common.add_model_options(p)


def run_line(r) -> str:
    """One run in words: exam, run id, its state."""
    res = r.result
    if res is None:
        state = "no result (interrupted)"
    elif res.get("score") is None:
        state = "no score"
    else:
        kind = f"final {res.get('label')}" if res.get("final") else "partial"
        state = f"P(HCC) {float(res['score']):.3f} {kind} ({res.get('slots_filled')}/" \
                f"{res.get('slots_total')} slots)"
        kept, filled = r.crops_kept(), res.get("slots_filled")
        if isinstance(filled, int) and kept < filled:
            state += f", partial crops {kept}/{res.get('slots_total')}"
        if (res.get("domain") or {}).get("state") == "out":
            cat = (res.get("features") or {}).get("category") or "no category"
            state += f", outside the model's domain (TIC reading: {cat})"
    return f"{r.exam}  {r.run}  {state}"


def run(args) -> int:
    from ceustream.engine.app import journal as jr
    from ceustream.engine.app.rescore import rescore
    from ceustream.engine.core.errors import UsageError

    cfg = common.load_config(args)
    root = jr.default_dir(cfg)
    if args.action == "list":
        runs = jr.runs(root, args.exam) if args.exam else jr.list_runs(root)
        for r in runs:
            print(run_line(r))
        return 0
    if not args.exam:
        raise UsageError(f"journal {args.action}: give the exam id")
    if args.action == "show":
        info, records, _ = jr.load(root, args.exam, args.run)
        print(json.dumps({"exam": info, "slots": [records[i] for i in sorted(records)]}, indent=1))
        return 0
    result = rescore(root, args.exam, cfg, args.run)
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
    else:
        common.print_result(result)
    return 0 if result["final"] else 4
