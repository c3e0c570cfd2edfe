#!/usr/bin/python3
"""STAND-IN for OpenZFS's zfs(8), for the ZFS provider's tests only (no real ZFS here).

Installed as `zfs` in the sshd fixture's stand-in PATH directory. Implements just
`zfs get -Hp -o value,source PROP DATASET`, `zfs set PROP=VALUE DATASET` and
`zfs inherit [-S] PROP DATASET`, with real zfs's inheritance rules (local -> inherited from
the nearest ancestor with a local value -> default) and its error messages and exit codes.
State: zfs-state.json next to this file ({"dataset": {"prop": "local value"}}).
"""

import json
import os
import sys

DEFAULTS = {"compression": "off", "atime": "on", "recordsize": "131072", "sync": "standard"}
STATE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "zfs-state.json")
SIZES = {"K": 2**10, "M": 2**20, "G": 2**30}


def load():
    with open(STATE) as fh:
        return json.load(fh)


def save(state):
    with open(STATE, "w") as fh:
        json.dump(state, fh)


def fail(message, code=1):
    print(message, file=sys.stderr)
    sys.exit(code)


def need(state, dataset):
    if dataset not in state:
        fail(f"cannot open '{dataset}': dataset does not exist")


def check_prop(prop):
    if prop not in DEFAULTS and ":" not in prop:
        fail(f"bad property list: invalid property '{prop}'", 2)


def parseable(prop, value):
    if prop == "recordsize" and value[-1:].upper() in SIZES:
        return str(int(value[:-1]) * SIZES[value[-1].upper()])
    return value


def main(argv):
    state = load()
    args = [a for a in argv if a != "--"]
    if args[:4] == ["get", "-Hp", "-o", "value,source"] and len(args) == 6:
        prop, dataset = args[4], args[5]
        check_prop(prop)
        need(state, dataset)
        if prop in state[dataset]:
            print(f"{state[dataset][prop]}\tlocal")
            return
        parent = dataset
        while "/" in parent:
            parent = parent.rsplit("/", 1)[0]
            if prop in state.get(parent, {}):
                print(f"{state[parent][prop]}\tinherited from {parent}")
                return
        print(f"{DEFAULTS.get(prop, '-')}\t{'default' if prop in DEFAULTS else '-'}")
        return
    if args[:1] == ["set"] and len(args) == 3 and "=" in args[1]:
        prop, value = args[1].split("=", 1)
        check_prop(prop)
        need(state, args[2])
        if prop == "compression" and value not in ("on", "off", "lz4", "zstd", "gzip", "zle"):
            fail(f"cannot set property for '{args[2]}': 'compression' must be one of ...")
        state[args[2]][prop] = parseable(prop, value)
        save(state)
        return
    if args[:1] == ["inherit"]:
        rest = [a for a in args[1:] if a != "-S"]
        if len(rest) == 2:
            check_prop(rest[0])
            need(state, rest[1])
            state[rest[1]].pop(rest[0], None)
            save(state)
            return
    fail("stand-in zfs: unsupported command: " + " ".join(argv), 2)


if __name__ == "__main__":
    main(sys.argv[1:])
