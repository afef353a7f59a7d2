#!/usr/bin/env python3
"""Print a secret held by latchkeyd, asked over D-Bus.

Usage: python3 dbus_get.py SERVICE [ACCOUNT]
Needs the dbus-python package (Debian: python3-dbus).
"""
import sys

import dbus


def main() -> int:
    service = sys.argv[1]
    account = sys.argv[2] if len(sys.argv) > 2 else ""  # "" means the default account
    bus = dbus.SessionBus()
    latchkey = dbus.Interface(
        bus.get_object("dev.latchkey.Latchkey1", "/dev/latchkey/Latchkey1"),
        "dev.latchkey.Latchkey1",
    )
    options = dbus.Dictionary({}, signature="sv")  # may hold "scopes" (as), "min_valid_secs" (t)
    try:
        result = latchkey.Get(service, account, options)
    except dbus.exceptions.DBusException as error:
        # The name says what went wrong: dev.latchkey.Latchkey1.Error.NotFound, .Locked, ...
        print(f"{error.get_dbus_name()}: {error.get_dbus_message()}", file=sys.stderr)
        return 1
    print(result["secret"])
    return 0


if __name__ == "__main__":
    sys.exit(main())
