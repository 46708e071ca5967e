"""A real SMTP server (aiosmtpd) for oc-alerts' email tests.

By default it requires STARTTLS, then AUTH as one user, before it accepts mail; `--implicit`
speaks TLS from the first byte instead, `--plain` neither (a local relay). It prints `READY`
once it listens, then one JSON line per message accepted, and stops when its stdin closes.
"""

import argparse
import json
import ssl
import sys
import warnings

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword


class Handler:
    async def handle_DATA(self, server, session, envelope):
        print(
            json.dumps(
                {
                    "from": envelope.mail_from,
                    "to": envelope.rcpt_tos,
                    "authenticated": bool(session.authenticated),
                    "tls": session.ssl is not None
                    or server.transport.get_extra_info("sslcontext") is not None,
                    "data": envelope.content.decode("utf-8", "replace"),
                }
            ),
            flush=True,
        )
        return "250 Message accepted"


def authenticator(user, password):
    def check(server, session, envelope, mechanism, auth_data):
        ok = (
            isinstance(auth_data, LoginPassword)
            and auth_data.login == user.encode()
            and auth_data.password == password.encode()
        )
        return AuthResult(success=ok, handled=False)

    return check


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--cert")
    p.add_argument("--key")
    p.add_argument("--user", default="oc")
    p.add_argument("--password", default="s3cret")
    mode = p.add_mutually_exclusive_group()
    mode.add_argument("--implicit", action="store_true")
    mode.add_argument("--plain", action="store_true")
    a = p.parse_args()
    if a.plain:
        controller = Controller(Handler(), hostname="127.0.0.1", port=a.port)
    else:
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(a.cert, a.key)
        auth = dict(
            authenticator=authenticator(a.user, a.password),
            auth_required=True,
            auth_require_tls=True,
        )
        if a.implicit:
            # The whole connection is TLS: aiosmtpd's `auth_require_tls` only knows STARTTLS.
            auth["auth_require_tls"] = False
            warnings.filterwarnings("ignore", message="Requiring AUTH while not requiring TLS")
            controller = Controller(
                Handler(), hostname="127.0.0.1", port=a.port, ssl_context=ctx,
                server_kwargs=auth,
            )
        else:
            controller = Controller(
                Handler(), hostname="127.0.0.1", port=a.port,
                server_kwargs=dict(require_starttls=True, tls_context=ctx, **auth),
            )
    controller.start()
    print("READY", flush=True)
    sys.stdin.read()
    controller.stop()


if __name__ == "__main__":
    main()
