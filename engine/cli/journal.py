"""``ceustream journal list | show EXAM | rescore EXAM``: exams journaled on this machine."""

from __future__ import annotations

import json

from ceustream.engine.core.errors import UsageError

from . import common


def add_parser(sub) -> None:
    p = common.command(sub, "journal", "exams journaled on this machine", codes=(0, 1, 2, 3, 4, 5),
                       description="exams journaled on this machine: `list` them (an interrupted "
                       "one shows as such), `show` one, or `rescore` one from its stored slots "
                       "(with any model or backend)")
    p.add_argument("action", choices=["list", "show", "rescore"], help="list, show or rescore")
    p.add_argument("exam", nargs="?", help="the exam id (show, rescore)")
    p.add_argument("--json", action="store_true", help="rescore: print the result as JSON")
    common.add_model_options(p)


def run(args) -> int:
    from ceustream.engine.app import journal as jr
    from ceustream.engine.app.rescore import rescore

    cfg = common.load_config(args)
    root = jr.default_dir(cfg)
    if args.action == "list":
        for e in jr.list_exams(root):
            res = root / e / "result.json"
            r = json.loads(res.read_text()) if res.exists() else None
            state = "no result (interrupted)" if r is None else (
                f"P(HCC) {r['score']:.3f} {'final ' + str(r['label']) if r['final'] else 'partial'}"
                if r["score"] is not None else "no score")
            print(f"{e}  {state}")
        return 0
    if not args.exam:
        raise UsageError(f"journal {args.action}: give the exam id")
    if args.action == "show":
        info, records, _ = jr.load(root, args.exam)
        print(json.dumps({"exam": info, "slots": [records[i] for i in sorted(records)]}, indent=1))
        return 0
    result = rescore(root, args.exam, cfg)
    if args.json:
        print(json.dumps(result, separators=(",", ":")))
    else:
        common.print_result(result)
    return 0 if result["final"] else 4
