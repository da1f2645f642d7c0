"""`walkme-dic operator | sync | crds | run`: one entry point, each command in its own module.
(The demo is not part of the product: `bash scripts/demo.sh`, from the dev package.)"""

from __future__ import annotations

import importlib
import sys

COMMANDS = {
    "operator": ("walkme_dic.controllers.run", "Run the operator (kopf) against the current cluster."),
    "sync": ("walkme_dic.sync.command", "Run one sync (what every sync Job runs)."),
    "crds": ("walkme_dic.crdgen", "Render the CRDs and the API reference from the models."),
    "run": ("walkme_dic.request_run", "Run an Integration now and follow it to its result (like flux reconcile)."),
}


def usage() -> str:
    lines = ["usage: walkme-dic COMMAND [options]", "", "commands:"]
    lines += [f"  {name:<10} {help_text}" for name, (_, help_text) in COMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] in ("-h", "--help") or args[0] not in COMMANDS:
        print(usage(), file=sys.stderr if args and args[0] not in ("-h", "--help") else sys.stdout)
        return 0 if args and args[0] in ("-h", "--help") else 2
    module = importlib.import_module(COMMANDS[args[0]][0])
    return int(module.main(args[1:]) or 0)


if __name__ == "__main__":
    sys.exit(main())
