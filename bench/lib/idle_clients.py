#!/usr/bin/env python3
"""Open many PostgreSQL client connections, log each one in, and leave them idle.

    idle_clients.py HOST PORT USER PASSWORD DATABASE COUNT [--timeout S] [--hold S]

Each connection sends a startup packet, answers the authentication request (trust, cleartext,
md5 or SCRAM-SHA-256) and waits for ReadyForQuery. When every attempt has finished (or attempts
keep failing, as with a proxy that has a fixed number of worker processes) it prints one line

    READY reached=N failed=F elapsed=SECONDS first_error=...

and then holds the connections open until a line arrives on standard input, standard input is
closed, or --hold seconds pass; then it sends Terminate on each and exits.
"""
import argparse
import asyncio
import base64
import hashlib
import hmac
import os
import resource
import struct
import sys
import time


def raise_fd_limit():
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            pass
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def message(kind: bytes, payload: bytes) -> bytes:
    return kind + struct.pack("!I", len(payload) + 4) + payload


def startup_packet(user: str, database: str) -> bytes:
    body = struct.pack("!I", 196608)
    for key, value in (("user", user), ("database", database), ("application_name", "bench-idle")):
        body += key.encode() + b"\0" + value.encode() + b"\0"
    body += b"\0"
    return struct.pack("!I", len(body) + 4) + body


class Scram:
    """The client side of SCRAM-SHA-256 (no channel binding)."""

    def __init__(self, password: str):
        self.password = password.encode()
        self.nonce = base64.b64encode(os.urandom(18)).decode()
        self.client_first_bare = f"n=,r={self.nonce}"
        self.auth_message = b""
        self.salted = b""

    def first(self) -> bytes:
        data = ("n,," + self.client_first_bare).encode()
        return b"SCRAM-SHA-256\0" + struct.pack("!i", len(data)) + data

    def final(self, server_first: bytes) -> bytes:
        fields = dict(part.split("=", 1) for part in server_first.decode().split(","))
        nonce, salt, iterations = fields["r"], base64.b64decode(fields["s"]), int(fields["i"])
        if not nonce.startswith(self.nonce):
            raise ValueError("server nonce does not extend ours")
        self.salted = hashlib.pbkdf2_hmac("sha256", self.password, salt, iterations)
        client_key = hmac.new(self.salted, b"Client Key", hashlib.sha256).digest()
        stored_key = hashlib.sha256(client_key).digest()
        without_proof = f"c=biws,r={nonce}"
        self.auth_message = f"{self.client_first_bare},{server_first.decode()},{without_proof}".encode()
        signature = hmac.new(stored_key, self.auth_message, hashlib.sha256).digest()
        proof = bytes(a ^ b for a, b in zip(client_key, signature))
        return f"{without_proof},p={base64.b64encode(proof).decode()}".encode()


async def read_message(reader: asyncio.StreamReader):
    header = await reader.readexactly(5)
    kind, length = header[:1], struct.unpack("!I", header[1:])[0]
    payload = await reader.readexactly(length - 4) if length > 4 else b""
    return kind, payload


def error_text(payload: bytes) -> str:
    fields = {}
    for part in payload.split(b"\0"):
        if part:
            fields[chr(part[0])] = part[1:].decode(errors="replace")
    return f"{fields.get('C', '?')} {fields.get('M', '')}".strip()


async def login(host, port, user, password, database, timeout):
    reader, writer = await asyncio.wait_for(asyncio.open_connection(host, port), timeout)
    try:
        writer.write(startup_packet(user, database))
        await writer.drain()
        scram = None
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise asyncio.TimeoutError()
            kind, payload = await asyncio.wait_for(read_message(reader), remaining)
            if kind == b"R":
                code = struct.unpack("!I", payload[:4])[0]
                if code == 0 or code == 12:  # ok, SASL final
                    continue
                if code == 3:  # cleartext
                    writer.write(message(b"p", password.encode() + b"\0"))
                elif code == 5:  # md5
                    salt = payload[4:8]
                    inner = hashlib.md5((password + user).encode()).hexdigest().encode()
                    outer = "md5" + hashlib.md5(inner + salt).hexdigest()
                    writer.write(message(b"p", outer.encode() + b"\0"))
                elif code == 10:  # SASL
                    if b"SCRAM-SHA-256\0" not in payload[4:]:
                        raise RuntimeError("no SCRAM-SHA-256 among the SASL mechanisms")
                    scram = Scram(password)
                    writer.write(message(b"p", scram.first()))
                elif code == 11 and scram is not None:
                    writer.write(message(b"p", scram.final(payload[4:])))
                else:
                    raise RuntimeError(f"unsupported authentication request {code}")
                await writer.drain()
            elif kind == b"E":
                raise RuntimeError(error_text(payload))
            elif kind == b"Z":
                return reader, writer
            # S (ParameterStatus), K (BackendKeyData), N (notice): nothing to do
    except BaseException:
        writer.close()
        raise


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("host")
    parser.add_argument("port", type=int)
    parser.add_argument("user")
    parser.add_argument("password")
    parser.add_argument("database")
    parser.add_argument("count", type=int)
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds per login")
    parser.add_argument("--hold", type=float, default=300.0, help="most seconds to hold the connections")
    parser.add_argument("--concurrency", type=int, default=128, help="logins in flight at once")
    parser.add_argument("--give-up-after", type=int, default=150,
                        help="stop starting new logins once this many have failed")
    args = parser.parse_args()

    limit = raise_fd_limit()
    count = min(args.count, max(0, limit - 64))
    connections = []
    failures = 0
    first_error = ""
    started = time.monotonic()
    gate = asyncio.Semaphore(args.concurrency)
    stop = asyncio.Event()

    async def one():
        nonlocal failures, first_error
        async with gate:
            if stop.is_set():
                return
            try:
                connections.append(await login(args.host, args.port, args.user, args.password,
                                               args.database, args.timeout))
            except (Exception, asyncio.TimeoutError) as error:  # noqa: BLE001 - we count every failure
                failures += 1
                if not first_error:
                    text = str(error) or (f"no ReadyForQuery within {args.timeout:g} s"
                                          if isinstance(error, asyncio.TimeoutError) else "")
                    first_error = (type(error).__name__ + ": " + text).replace("\n", " ")[:160]
                if failures >= args.give_up_after:
                    stop.set()

    await asyncio.gather(*(one() for _ in range(count)))
    elapsed = time.monotonic() - started
    if count < args.count and not first_error:
        first_error = f"open-file limit {limit} allows only {count} connections"
    print(f"READY reached={len(connections)} failed={failures} elapsed={elapsed:.1f} "
          f"first_error={first_error or '-'}", flush=True)

    loop = asyncio.get_running_loop()
    try:
        await asyncio.wait_for(loop.run_in_executor(None, sys.stdin.readline), args.hold)
    except asyncio.TimeoutError:
        pass
    for _, writer in connections:
        try:
            writer.write(message(b"X", b""))
            writer.close()
        except Exception:  # noqa: BLE001 - closing is best effort
            pass
    await asyncio.sleep(0.5)
    sys.stdout.flush()
    os._exit(0)  # do not wait for the thread still blocked on standard input


if __name__ == "__main__":
    asyncio.run(main())
