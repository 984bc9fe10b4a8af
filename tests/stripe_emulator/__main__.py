"""``python -m tests.stripe_emulator --port 12111 --webhook-url URL --webhook-secret S``."""

from __future__ import annotations

import argparse

import uvicorn

from .app import create_emulator_app


def main() -> None:
    parser = argparse.ArgumentParser(description="Local Stripe API emulator")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=12111)
    parser.add_argument("--webhook-url", default=None, help="where to POST signed events")
    parser.add_argument("--webhook-secret", default="whsec_emulator")
    parser.add_argument("--log-level", default="info", help="uvicorn log level (warning: no access log)")
    args = parser.parse_args()
    app = create_emulator_app(webhook_url=args.webhook_url, webhook_secret=args.webhook_secret)
    app.state.emulator.base_url = f"http://{args.host}:{args.port}"
    print(f"Stripe emulator on http://{args.host}:{args.port}  (API key: any sk_test_...)")
    uvicorn.run(app, host=args.host, port=args.port, log_level=args.log_level)


if __name__ == "__main__":
    main()
