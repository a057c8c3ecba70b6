"""Every user-facing string of the sign-in pages, in one place for translation."""

from __future__ import annotations

STRINGS: dict[str, str] = {
    "consent_title": "Connect {app} to your TikTok account",
    "consent_lead": "{app} would like to:",
    "consent_continue": "Continue with TikTok",
    "consent_cancel": "Cancel",
    "consent_note": (
        "You sign in by scanning a QR code with the TikTok app. Your TikTok session stays on "
        "this server: {app} never sees it. You can disconnect the app at any time."
    ),
    "qr_title": "Scan with the TikTok app",
    "qr_help": "Open TikTok on your phone, tap the scan icon, and point it at this code.",
    "qr_open_on_phone": "On your phone? Open this sign-in in the TikTok app",
    "qr_open_in_app": "Open in the TikTok app",
    "qr_alt": "QR code to sign in with TikTok",
    "qr_expires": "This code refreshes in",
    "qr_seconds": "s",
    "back_to_app": "Cancel and return to the app",
    "signed_in_as": "Signed in as @{user}",
    "login_expired": "This sign-in link has expired. Please start again from the app.",
    "bad_csrf": "The form was not accepted. Reload the page and try again.",
    "error_title": "Something is wrong with this request",
    "homepage": "Website",
}

STATUS_TEXT: dict[str, str] = {
    "consent": "Waiting for you to continue.",
    "new": "Waiting for you to scan the code.",
    "scanned": "Scanned. Confirm the sign-in in the TikTok app.",
    "verify": "TikTok needs to verify it's you. Follow the steps in the TikTok app, then confirm.",
    "confirmed": "Confirmed. Finishing…",
    "done": "Signed in. Returning to the app…",
    "refused": "Sign-in was declined.",
    "error": "Something went wrong. Please start again.",
}


def status_text(status: str) -> str:
    return STATUS_TEXT.get(status, status)
