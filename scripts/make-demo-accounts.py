#!/usr/bin/env python3
"""Writes ivr-flows/accounts.csv: the demo merchants whose PINs ivr-flows/README.md lists.

The hashes are argon2id PHC strings with a fresh random salt and the parameters the Rust `argon2`
crate uses by default (m=19456 KiB, t=2, p=1), so `switchboard` verifies them exactly as it verifies
hashes made by `switchboard pin-hash`. Re-running changes every salt (and so every line) on purpose:
only run it when the demo table below changes.

Needs: pip install argon2-cffi
"""

import csv
import pathlib
import sys

from argon2 import PasswordHasher

# account_id, name, phones (;-separated E.164), PIN, tier, priority, city
DEMO = [
    ("1001", "Padaria Pão Quente", "+5511987650000;+551133330000", "4321", "gold", "10", "São Paulo"),
    ("1002", "Loja Bom Preço", "+5521998760000", "2580", "standard", "1", "Rio de Janeiro"),
    ("1003", "Café da Esquina", "+5531991230000", "7391", "silver", "5", "Belo Horizonte"),
    ("1004", "Mercado del Sol", "+5491155550000", "8642", "gold", "8", "Buenos Aires"),
    ("1005", "Ferragens Silva", "+5541988880000", "5150", "standard", "1", "Curitiba"),
]


def main() -> int:
    out = pathlib.Path(__file__).resolve().parent.parent / "ivr-flows" / "accounts.csv"
    hasher = PasswordHasher(time_cost=2, memory_cost=19456, parallelism=1, hash_len=32, salt_len=16)
    rows = []
    for account_id, name, phones, pin, tier, priority, city in DEMO:
        pin_hash = hasher.hash(pin)
        # Guard against a silent change of library defaults: the server expects exactly these.
        if not pin_hash.startswith("$argon2id$v=19$m=19456,t=2,p=1$") or not hasher.verify(pin_hash, pin):
            print(f"unexpected hash for account {account_id}", file=sys.stderr)
            return 1
        rows.append([account_id, name, phones, pin_hash, tier, priority, city])
    with out.open("w", newline="", encoding="utf-8") as f:
        writer = csv.writer(f, lineterminator="\n")
        writer.writerow(["account_id", "name", "phones", "pin_hash", "tier", "priority", "city"])
        writer.writerows(rows)
    print(f"wrote {len(rows)} accounts to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
