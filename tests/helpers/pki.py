"""Throw-away certificate authorities for TLS tests, made with the openssl CLI
in a directory of the test's own (nothing outside it is touched).

    ca = CA(tmp_path, "ca1")
    switch = ca.issue("switch")        # .key, .cert (PEM paths), .ca (the CA cert)
"""
import os
import shutil
import subprocess
from dataclasses import dataclass


def have_openssl():
    return shutil.which("openssl") is not None


def _openssl(*args):
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Identity:
    key: str
    cert: str
    ca: str


class CA:
    def __init__(self, directory, name):
        self.dir = os.path.join(str(directory), name)
        os.makedirs(self.dir, exist_ok=True)
        self.name = name
        self.key = os.path.join(self.dir, "cacert.key")
        self.cert = os.path.join(self.dir, "cacert.pem")
        _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", self.key, "-out", self.cert,
                 "-days", "2", "-subj", f"/CN=vswitch test CA {name}",
                 "-addext", "basicConstraints=critical,CA:TRUE",
                 "-addext", "keyUsage=critical,keyCertSign,cRLSign")

    def issue(self, who):
        key = os.path.join(self.dir, f"{who}-privkey.pem")
        cert = os.path.join(self.dir, f"{who}-cert.pem")
        csr = os.path.join(self.dir, f"{who}.csr")
        ext = os.path.join(self.dir, f"{who}.ext")
        with open(ext, "w") as f:
            f.write("basicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\n"
                    "extendedKeyUsage=serverAuth,clientAuth\n")
        _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", key, "-out", csr,
                 "-subj", f"/CN={who} ({self.name})")
        _openssl("x509", "-req", "-in", csr, "-CA", self.cert, "-CAkey", self.key, "-CAcreateserial",
                 "-out", cert, "-days", "2", "-extfile", ext)
        return Identity(key, cert, self.cert)
