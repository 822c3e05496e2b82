"""`yume-env play`: serve a local web page to walk the world with the keyboard."""

from __future__ import annotations

import argparse
import errno
import socket
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default=None, help="world folder (default: the shipped default world)")
    parser.add_argument("--device", default="cpu", help="torch device of the model, e.g. cpu, cuda, cuda:1")
    parser.add_argument("--dtype", default=None, help="float32 / bfloat16 / float16 (default: the folder's own)")
    parser.add_argument(
        "--sample-steps", type=int, default=None, help="denoising steps per chunk (default: the world's)"
    )
    parser.add_argument("--host", default="127.0.0.1", help="interface to bind (default 127.0.0.1: this machine only)")
    parser.add_argument("--port", type=int, default=7860, help="TCP port (0: any free port)")
    parser.add_argument(
        "--allow-remote",
        action="store_true",
        help="allow a non-loopback --host (the page has no password: trusted networks only)",
    )
    parser.add_argument("--seed", type=int, default=None, help="seed of the first reset (default: random)")
    parser.add_argument(
        "--max-steps-per-s",
        type=float,
        default=None,
        help="cap on env steps per second (default: the world's real-time rate; 0: as fast as it goes)",
    )
    parser.add_argument(
        "--frame-format",
        choices=("auto", "png", "jpeg"),
        default="auto",
        help="how frames travel to the page (auto: PNG up to 256 px, else JPEG)",
    )


def run(args: argparse.Namespace) -> int:
    from yume_env.play import serve
    from yume_env.play.server import check_host

    try:
        check_host(args.host, args.allow_remote)
    except ValueError as exc:
        print(f"yume-env play: {exc}", file=sys.stderr)
        return 2
    if args.max_steps_per_s is not None and args.max_steps_per_s < 0:
        print("yume-env play: --max-steps-per-s must be >= 0 (0: no cap)", file=sys.stderr)
        return 2
    if not _port_free(args.host, args.port):  # before loading a model that may take minutes
        print(
            f"yume-env play: port {args.port} is in use; pass --port N (or --port 0 for any free port)", file=sys.stderr
        )
        return 1
    print(f"loading the world ({args.model or 'default world'}) on {args.device} ...", flush=True)
    try:
        server = serve(
            model=args.model,
            device=args.device,
            dtype=args.dtype,
            sample_steps=args.sample_steps,
            host=args.host,
            port=args.port,
            allow_remote=args.allow_remote,
            seed=args.seed,
            max_steps_per_s=args.max_steps_per_s,
            frame_format=args.frame_format,
        )
    except (FileNotFoundError, ValueError) as exc:  # no such world folder, bad --dtype, ...: a usage error
        print(f"yume-env play: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            print(
                f"yume-env play: port {args.port} is in use; pass --port N (or --port 0 for any free port)",
                file=sys.stderr,
            )
            return 1
        raise
    print(f"yume-env play: open {server.url} in a browser (Ctrl+C to stop)", flush=True)
    if args.allow_remote:
        port = server.server_address[1]
        print(f"from other machines: http://{socket.gethostname()}:{port}/ (if {args.host} is reachable)", flush=True)
        print(
            "warning: --allow-remote: anyone who can reach this port can play and download the recording",
            file=sys.stderr,
        )
    try:
        server.serve_forever(poll_interval=0.5)
    except KeyboardInterrupt:
        print("\nstopping", file=sys.stderr)
    finally:
        server.close()
    return 0


def _port_free(host: str, port: int) -> bool:
    if port == 0:
        return True
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server binds
        try:
            probe.bind((host, port))
        except OSError:
            return False
    return True
