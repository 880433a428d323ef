"""Server-rendered pages of the authorisation flow: phone sign-in and consent.

No JavaScript: plain forms that work in the app's webview and any browser.
Every value is HTML-escaped; pages may not be framed (clickjacking on consent).
"""

from __future__ import annotations

from html import escape

from identity.oauth import scopes as scope_catalog

SECURITY_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "no-store",
    "X-Content-Type-Options": "nosniff",
}

_STYLE = """body{font-family:system-ui,sans-serif;max-width:26rem;margin:2rem auto;padding:0 1rem}
h1{font-size:1.3rem}
input{font-size:1rem;padding:.5rem;width:100%;box-sizing:border-box;margin:.3rem 0}
button{font-size:1rem;padding:.6rem 1.2rem;margin:.5rem .5rem 0 0}.err{color:#b00020}
li{margin:.3rem 0}"""


def _page(title: str, body: str) -> str:
    return (
        f'<!doctype html><html lang="zh-CN"><head><meta charset="utf-8">'
        f'<meta name="viewport" content="width=device-width,initial-scale=1">'
        f"<title>{escape(title)}</title><style>{_STYLE}</style></head>"
        f"<body>{body}</body></html>"
    )


def _hidden(**values: str) -> str:
    return "".join(
        f'<input type="hidden" name="{escape(k)}" value="{escape(v)}">' for k, v in values.items()
    )


def login_page(
    *, csrf: str, return_to: str, phone: str = "", code_sent: bool = False, error: str = ""
) -> str:
    err = f'<p class="err" role="alert">{escape(error)}</p>' if error else ""
    hidden = _hidden(csrf=csrf, return_to=return_to)
    send = (
        f'<form method="post" action="/oauth2/login">{hidden}'
        f'<input type="hidden" name="step" value="send">'
        f'<label>手机号 Phone<input name="phone" type="tel" autocomplete="tel" required '
        f'value="{escape(phone)}"></label><button type="submit">'
        f"{'重新发送 Resend code' if code_sent else '获取验证码 Send code'}</button></form>"
    )
    verify = (
        (
            f'<form method="post" action="/oauth2/login">{hidden}'
            f'<input type="hidden" name="step" value="verify">'
            f'<input type="hidden" name="phone" value="{escape(phone)}">'
            f'<label>验证码 Code<input name="code" inputmode="numeric" maxlength="6" '
            f'autocomplete="one-time-code" required autofocus></label>'
            f'<button type="submit">登录 Sign in</button></form>'
        )
        if code_sent
        else ""
    )
    return _page("登录 Sign in", f"<h1>登录 i深圳 · Sign in</h1>{err}{send}{verify}")


def consent_page(*, client_name: str, scopes: tuple[str, ...], request_id: str, csrf: str) -> str:
    items = "".join(f"<li>{escape(scope_catalog.describe(s))}</li>" for s in scopes)
    hidden = _hidden(request_id=request_id, csrf=csrf)
    body = (
        f"<h1>「{escape(client_name)}」申请使用 · wants to use</h1><ul>{items}</ul>"
        f'<form method="post" action="/oauth2/authorize">{hidden}'
        f'<button type="submit" name="decision" value="allow">同意 Allow</button>'
        f'<button type="submit" name="decision" value="deny">拒绝 Deny</button></form>'
    )
    return _page("授权 Consent", body)


def error_page(title: str, detail: str, request_id: str) -> str:
    body = (
        f"<h1>无法继续 · {escape(title)}</h1><p>{escape(detail)}</p>"
        f"<p><small>Request {escape(request_id)}</small></p>"
    )
    return _page("错误 Error", body)
