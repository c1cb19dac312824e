# SPDX-License-Identifier: Apache-2.0
"""A tiny demo program shipped in the encrypted /app region."""
with open("/app/config.yaml") as f:
    print("config has", len(f.read().splitlines()), "lines")
