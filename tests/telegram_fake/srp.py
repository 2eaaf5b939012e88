"""The server half of Telegram's 2FA check (SRP-2048), so Telethon's own `compute_check`
is verified for real: a wrong password fails with PASSWORD_HASH_INVALID, the right one passes.

Follows https://core.telegram.org/api/srp. The verifier v = g^x mod p is derived with
Telethon's `compute_hash` (the KDF a client runs when it sets the password; the server only
ever stores v). The prime is the one Telegram serves and Telethon knows as good, so the client
skips its slow primality check.
"""

from __future__ import annotations

import random

from telethon import password as pwd
from telethon.tl import types

# Telegram's 2048-bit safe prime, as Telethon's `check_prime_and_good` knows it.
_P_INT = int(
    "C71CAEB9C6B1C9048E6C522F70F13F73980D40238E3E21C14934D037563D930F"
    "48198A0AA7C14058229493D22530F4DBFA336F6E0AC925139543AED44CCE7C37"
    "20FD51F69458705AC68CD4FE6B6B13ABDC9746512969328454F18FAF8C595F64"
    "2477FE96BB2A941D5BCD1D4AC8CC49880708FA9B378E3C4F3A9060BEE67CF9A4"
    "A4A695811051907E162753B56B0F6B410DBA74D8A84B2A14B3144E0EF1284754"
    "FD17ED950D5965B4B9DD46582DB1178D169C6BC465B0D6FF9CA3928FEF5B9AE4"
    "E418FC15E83EBEA0F87FA9FF5EED70050DED2849F47BF959D956850CE929851F"
    "0D8115F635B105EE2E4E15D04B2454BF6F4FADF034B10403119CD8E3B92FCC5B",
    16,
)
_P = _P_INT.to_bytes(256, "big")
_G = 3


class SrpServer:
    """One account's 2FA password: hands out challenges and checks Telethon's answers."""

    def __init__(self, password: str, rng: random.Random) -> None:
        self._rng = rng
        self.algo = types.PasswordKdfAlgoSHA256SHA256PBKDF2HMACSHA512iter100000SHA256ModPow(
            salt1=rng.randbytes(32), salt2=rng.randbytes(16), g=_G, p=_P
        )
        x = int.from_bytes(pwd.compute_hash(self.algo, password), "big")
        self._v = pow(_G, x, _P_INT)
        self._k = int.from_bytes(
            pwd.sha256(pwd.num_bytes_for_hash(_P), pwd.big_num_for_hash(_G)), "big"
        )
        # srp_id -> (b, B): each account.getPassword opens a new challenge.
        self._challenges: dict[int, tuple[int, int]] = {}

    def challenge(self) -> tuple[int, bytes]:
        """A new (srp_id, srp_B) pair for account.password."""
        while True:
            b = self._rng.getrandbits(2048)
            big_b = (self._k * self._v + pow(_G, b, _P_INT)) % _P_INT
            # The client refuses a B (or g^b) too close to 0 or p; draw again like a server would.
            if pwd.is_good_large(big_b, _P_INT) and pwd.is_good_mod_exp_first(
                pow(_G, b, _P_INT), _P_INT
            ):
                break
        srp_id = self._rng.getrandbits(63)
        self._challenges[srp_id] = (b, big_b)
        return srp_id, big_b.to_bytes(256, "big")

    def verify(self, srp_id: int, a_bytes: bytes, m1: bytes) -> bool | None:
        """True if M1 proves the password; False if not; None for an unknown srp_id."""
        found = self._challenges.pop(srp_id, None)
        if found is None:
            return None
        b, big_b = found
        big_a = int.from_bytes(a_bytes, "big")
        if not 0 < big_a < _P_INT:
            return False
        a_for_hash = pwd.big_num_for_hash(big_a)
        b_for_hash = pwd.big_num_for_hash(big_b)
        u = int.from_bytes(pwd.sha256(a_for_hash, b_for_hash), "big")
        # S = (A * v^u)^b mod p equals the client's (B - k*v)^(a + u*x) mod p.
        s = pow(big_a * pow(self._v, u, _P_INT) % _P_INT, b, _P_INT)
        k_session = pwd.sha256(pwd.big_num_for_hash(s))
        expected = pwd.sha256(
            pwd.xor(pwd.sha256(pwd.num_bytes_for_hash(_P)), pwd.sha256(pwd.big_num_for_hash(_G))),
            pwd.sha256(self.algo.salt1),
            pwd.sha256(self.algo.salt2),
            a_for_hash,
            b_for_hash,
            k_session,
        )
        return expected == m1
