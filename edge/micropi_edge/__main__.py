"""Command line of the edge device (`micropi-edge`)."""

import sys


def main() -> int:
    print("micropi-edge: not built yet (see issue 'edge')", file=sys.stderr)
    return 2


if __name__ == "__main__":
    sys.exit(main())
