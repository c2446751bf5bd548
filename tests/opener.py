"""Opens a bundle with stock tools only (7z, openssl, base64): no jcdiag code on this side."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path


def open_with_stock_tools(bundle: Path, private_key: Path | None, out: Path,
                          password: str | None = None) -> Path:
    outer = out / "outer"
    subprocess.run(["7z", "x", "-y", f"-o{outer}", str(bundle)], check=True, capture_output=True)
    header = json.loads((outer / "bundle.json").read_text())
    if password is None:
        sealed = header["recipients"][0]["sealed_secret"]
        blob = subprocess.run(["base64", "-d"], input=sealed.encode(), check=True,
                              capture_output=True).stdout
        password = subprocess.run(
            ["openssl", "pkeyutl", "-decrypt", "-inkey", str(private_key),
             "-pkeyopt", "rsa_padding_mode:oaep", "-pkeyopt", "rsa_oaep_md:sha256",
             "-pkeyopt", "rsa_mgf1_md:sha256"],
            input=blob, check=True, capture_output=True).stdout.decode()
    sha = subprocess.run(["sha256sum", str(outer / "payload.7z")], check=True,
                         capture_output=True, text=True).stdout.split()[0]
    assert sha == header["payload"]["sha256"]
    listing = subprocess.run(["7z", "l", "-slt", "-p" + password, str(outer / "payload.7z")],
                             check=True, capture_output=True, text=True).stdout
    assert "7zAES" in listing and "LZMA2" in listing
    inner = out / "inner"
    subprocess.run(["7z", "x", "-y", "-p" + password, f"-o{inner}", str(outer / "payload.7z")],
                   check=True, capture_output=True)
    return inner


def headers_are_encrypted(payload: Path) -> bool:
    """Without a password, 7z cannot even list the names of an archive with encrypted headers."""
    r = subprocess.run(["7z", "l", "-p", str(payload)], capture_output=True, text=True)
    return r.returncode != 0
