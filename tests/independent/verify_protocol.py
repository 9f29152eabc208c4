#!/usr/bin/env python3
"""Independent verifier for the bboard protocol test vectors.

Written from docs/PROTOCOL.md alone (no knowledge of the Rust implementation).
Parses the generated vectors in section 6 and recomputes everything from the spec:
Ed25519 keys and entry signatures, envelope ids, canonical leaf encoding, leaf
hashes, Merkle roots (RFC 9162 with BLAKE3), inclusion and consistency proofs
(RFC 9162 2.1.3.2 / 2.1.4.2), and the C2SP signed checkpoint. Also runs negative
checks (bit flips, malformed inputs) that must be rejected.

Usage: python3 verify_protocol.py [path/to/PROTOCOL.md]
Dependencies: blake3, cryptography (see requirements.txt).
"""

import base64
import hashlib
import os
import re
import sys

try:
    import blake3
    from cryptography.exceptions import InvalidSignature
    from cryptography.hazmat.primitives.asymmetric.ed25519 import (
        Ed25519PrivateKey,
        Ed25519PublicKey,
    )
    from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
except ImportError as e:  # pragma: no cover
    sys.stderr.write(
        "missing dependency (%s); run: python3 -m pip install -r "
        "tests/independent/requirements.txt\n" % e
    )
    sys.exit(2)


ENTRY_DOMAIN = b"bboard/v1/entry\n"
ENVELOPE_ID_DOMAIN = b"bboard/v1/envelope-id\n"
MAX_BODY = 262144
EM_DASH = "\u2014"


class VerifyError(Exception):
    pass


def fail(msg):
    raise VerifyError(msg)


# ---------------------------------------------------------------------------
# Hashing


def H(data):
    return blake3.blake3(data).digest()


def leaf_hash(d):
    return H(b"\x00" + d)


def node_hash(left, right):
    return H(b"\x01" + left + right)


TRACKING_DOMAIN = b"bboard/v1/tracking-code\n"
CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"


def tracking_code(previous, env_id):
    # PROTOCOL.md §7.3: BLAKE3-256(domain || previous code || envelope id).
    return H(TRACKING_DOMAIN + previous + env_id)


def short_tracking_code(code):
    # First 40 bits in Crockford base32, as XXXX-XXXX.
    bits = int.from_bytes(code[:5], "big")
    chars = "".join(CROCKFORD[(bits >> (35 - 5 * i)) & 31] for i in range(8))
    return chars[:4] + "-" + chars[4:]


def envelope_id(signer, body):
    return H(ENVELOPE_ID_DOMAIN + signer + body)


# ---------------------------------------------------------------------------
# Ed25519 (strict, as ed25519-dalek verify_strict): cryptography/OpenSSL does
# the RFC 8032 verification (S < l, R compared by encoding); we additionally
# reject small-order public keys and small-order R, implemented by hand here.

P = 2**255 - 19
D = (-121665 * pow(121666, P - 2, P)) % P
SQRT_M1 = pow(2, (P - 1) // 4, P)


def _decode_point(b):
    """Decode a 32-byte point encoding (y reduced mod p, as curve25519-dalek
    does). Returns affine (x, y) or None if not on the curve."""
    if len(b) != 32:
        return None
    v = int.from_bytes(b, "little")
    sign = v >> 255
    y = (v & ((1 << 255) - 1)) % P
    u = (y * y - 1) % P
    w = (D * y * y + 1) % P
    x2 = u * pow(w, P - 2, P) % P
    x = pow(x2, (P + 3) // 8, P)
    if (x * x - x2) % P != 0:
        x = x * SQRT_M1 % P
    if (x * x - x2) % P != 0:
        return None
    if x == 0 and sign:
        return None
    if (x & 1) != sign:
        x = P - x
    return (x, y)


def _add(p1, p2):
    x1, y1 = p1
    x2, y2 = p2
    t = D * x1 * x2 * y1 * y2 % P
    x3 = (x1 * y2 + x2 * y1) * pow(1 + t, P - 2, P) % P
    y3 = (y1 * y2 + x1 * x2) * pow(1 - t, P - 2, P) % P
    return (x3, y3)


def is_small_order(enc):
    pt = _decode_point(enc)
    if pt is None:
        return True  # not a valid point at all: reject just the same
    for _ in range(3):
        pt = _add(pt, pt)
    return pt == (0, 1)


def ed25519_verify_strict(pub, msg, sig):
    if len(pub) != 32 or len(sig) != 64:
        return False
    if _decode_point(pub) is None or is_small_order(pub):
        return False
    if is_small_order(sig[:32]):
        return False
    if int.from_bytes(sig[32:], "little") >= 2**252 + 27742317777372353535851937790883648493:
        return False
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, msg)
    except (InvalidSignature, ValueError):
        return False
    return True


def pub_from_seed(seed):
    sk = Ed25519PrivateKey.from_private_bytes(seed)
    return sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)


def sign(seed, msg):
    return Ed25519PrivateKey.from_private_bytes(seed).sign(msg)


# ---------------------------------------------------------------------------
# Minimal protobuf decoding with canonical-encoding checks


def read_varint(buf, pos):
    """Read a canonical (minimal) varint; returns (value, new_pos)."""
    start = pos
    value = 0
    shift = 0
    while True:
        if pos >= len(buf):
            fail("truncated varint")
        b = buf[pos]
        pos += 1
        value |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            break
        if pos - start >= 10:
            fail("varint too long")
    if value >= 1 << 64:
        fail("varint overflows 64 bits")
    if encode_varint(value) != buf[start:pos]:
        fail("non-minimal varint")
    return value, pos


def encode_varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def parse_fields(buf):
    """Parse a message into a list of (field_number, wire_type, value)."""
    pos = 0
    out = []
    while pos < len(buf):
        key, pos = read_varint(buf, pos)
        fno, wt = key >> 3, key & 7
        if fno == 0:
            fail("field number 0")
        if wt == 0:
            val, pos = read_varint(buf, pos)
        elif wt == 2:
            n, pos = read_varint(buf, pos)
            if pos + n > len(buf):
                fail("truncated length-delimited field")
            val = bytes(buf[pos : pos + n])
            pos += n
        elif wt == 1:
            if pos + 8 > len(buf):
                fail("truncated fixed64")
            val = bytes(buf[pos : pos + 8])
            pos += 8
        elif wt == 5:
            if pos + 4 > len(buf):
                fail("truncated fixed32")
            val = bytes(buf[pos : pos + 4])
            pos += 4
        else:
            fail("unsupported wire type %d" % wt)
        out.append((fno, wt, val))
    return out


def parse_canonical(buf, schema):
    """schema: {field_number: wire_type}. Enforces: known fields only, right
    wire types, strictly increasing field numbers (=> each at most once),
    no default (0 / empty) values. Returns {field_number: value}."""
    fields = parse_fields(buf)
    result = {}
    last = 0
    for fno, wt, val in fields:
        if fno not in schema:
            fail("unknown field %d" % fno)
        if schema[fno] != wt:
            fail("field %d has wire type %d, expected %d" % (fno, wt, schema[fno]))
        if fno <= last:
            fail("field %d out of order or repeated" % fno)
        last = fno
        if (wt == 0 and val == 0) or (wt == 2 and len(val) == 0):
            fail("field %d carries a default value" % fno)
        result[fno] = val
    return result


def decode_leaf(leaf_data):
    """Decode and validate a canonical Leaf; returns (timestamp, body, signer, signature)."""
    leaf = parse_canonical(leaf_data, {1: 0, 2: 2})
    if 2 not in leaf:
        fail("leaf has no envelope")
    env = parse_canonical(leaf[2], {1: 2, 2: 2, 3: 2})
    for f in (1, 2, 3):
        if f not in env:
            fail("envelope lacks field %d" % f)
    body, signer, sig = env[1], env[2], env[3]
    if len(signer) != 32:
        fail("signer is not 32 bytes")
    if len(sig) != 64:
        fail("signature is not 64 bytes")
    if not 1 <= len(body) <= MAX_BODY:
        fail("body length out of range")
    ts = leaf.get(1, 0)
    # decode -> re-encode round trip, per the doc's definition of canonical
    e = b""
    e += b"\x0a" + encode_varint(len(body)) + body
    e += b"\x12" + encode_varint(len(signer)) + signer
    e += b"\x1a" + encode_varint(len(sig)) + sig
    re_enc = b""
    if ts:
        re_enc += b"\x08" + encode_varint(ts)
    re_enc += b"\x12" + encode_varint(len(e)) + e
    if re_enc != leaf_data:
        fail("leaf does not re-encode to the same bytes")
    return ts, body, signer, sig


def verify_leaf(leaf_data):
    ts, body, signer, sig = decode_leaf(leaf_data)
    if not ed25519_verify_strict(signer, ENTRY_DOMAIN + body, sig):
        fail("envelope signature does not verify")
    return ts, body, signer, sig


# ---------------------------------------------------------------------------
# Merkle tree (RFC 9162 2.1 with BLAKE3)


def largest_pow2_lt(n):
    k = 1
    while k * 2 < n:
        k *= 2
    return k


def mth(leaves):
    n = len(leaves)
    if n == 0:
        return H(b"")
    if n == 1:
        return leaf_hash(leaves[0])
    k = largest_pow2_lt(n)
    return node_hash(mth(leaves[:k]), mth(leaves[k:]))


def path(m, leaves):
    """RFC 9162 2.1.3.1 PATH(m, D[n])."""
    n = len(leaves)
    if n == 1:
        return []
    k = largest_pow2_lt(n)
    if m < k:
        return path(m, leaves[:k]) + [mth(leaves[k:])]
    return path(m - k, leaves[k:]) + [mth(leaves[:k])]


def proof(m, leaves):
    """RFC 9162 2.1.4.1 PROOF(m, D[n])."""

    def subproof(m, d, b):
        n = len(d)
        if m == n:
            return [] if b else [mth(d)]
        k = largest_pow2_lt(n)
        if m <= k:
            return subproof(m, d[:k], b) + [mth(d[k:])]
        return subproof(m - k, d[k:], False) + [mth(d[:k])]

    if m == 0 or m == len(leaves):
        return []
    return subproof(m, leaves, True)


def verify_inclusion(index, size, lhash, proof_hashes, root):
    """RFC 9162 2.1.3.2."""
    if index >= size:
        return False
    fn, sn = index, size - 1
    r = lhash
    for p in proof_hashes:
        if sn == 0:
            return False
        if (fn & 1) or fn == sn:
            r = node_hash(p, r)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if (fn & 1) or fn == 0:
                        break
        else:
            r = node_hash(r, p)
        fn >>= 1
        sn >>= 1
    return sn == 0 and r == root


def verify_consistency(old_size, new_size, old_root, new_root, proof_hashes):
    """RFC 9162 2.1.4.2, with the special cases of PROTOCOL.md section 3."""
    if old_size > new_size:
        return False
    if old_size == new_size:
        return len(proof_hashes) == 0 and old_root == new_root
    if old_size == 0:
        return len(proof_hashes) == 0
    if len(proof_hashes) == 0:
        return False
    path_ = list(proof_hashes)
    if old_size & (old_size - 1) == 0:
        path_ = [old_root] + path_
    fn, sn = old_size - 1, new_size - 1
    while fn & 1:
        fn >>= 1
        sn >>= 1
    fr = sr = path_[0]
    for c in path_[1:]:
        if sn == 0:
            return False
        if (fn & 1) or fn == sn:
            fr = node_hash(c, fr)
            sr = node_hash(c, sr)
            if not fn & 1:
                while True:
                    fn >>= 1
                    sn >>= 1
                    if (fn & 1) or fn == 0:
                        break
        else:
            sr = node_hash(sr, c)
        fn >>= 1
        sn >>= 1
    return fr == old_root and sr == new_root and sn == 0


# ---------------------------------------------------------------------------
# Checkpoints and signed notes


def b64_canonical(s):
    try:
        raw = base64.b64decode(s, validate=True)
    except Exception:
        fail("invalid base64")
    if base64.b64encode(raw).decode("ascii") != s:
        fail("non-canonical base64")
    return raw


def key_id(name, pub):
    return hashlib.sha256(name.encode("utf-8") + b"\x0a\x01" + pub).digest()[:4]


def check_key_name(name):
    if not name or any(c.isspace() for c in name) or "+" in name:
        fail("bad key name %r" % name)


def verifier_key(name, pub):
    return "%s+%s+%s" % (
        name,
        key_id(name, pub).hex(),
        base64.b64encode(b"\x01" + pub).decode("ascii"),
    )


def parse_verifier_key(vkey):
    parts = vkey.split("+", 2)
    if len(parts) != 3:
        fail("verifier key needs three '+'-separated parts")
    name, hexid, b64 = parts
    check_key_name(name)
    if not re.fullmatch(r"[0-9a-f]{8}", hexid):
        fail("key id is not 8 lowercase hex digits")
    raw = b64_canonical(b64)
    if len(raw) != 33 or raw[0] != 0x01:
        fail("verifier key is not 0x01 || 32-byte Ed25519 key")
    pub = raw[1:]
    if key_id(name, pub).hex() != hexid:
        fail("key id does not match name and key")
    return name, bytes.fromhex(hexid), pub


def parse_checkpoint(text):
    """Returns (origin, size, root) or raises."""
    if not text.endswith("\n"):
        fail("checkpoint text does not end with newline")
    lines = text[:-1].split("\n")
    if len(lines) != 3:
        fail("checkpoint must have exactly 3 lines (no extension lines)")
    origin, size_s, root_s = lines
    if not origin or any(ord(c) < 0x20 or ord(c) == 0x7F for c in origin):
        fail("bad origin")
    if not re.fullmatch(r"0|[1-9][0-9]*", size_s):
        fail("bad tree size")
    root = b64_canonical(root_s)
    if len(root) != 32:
        fail("root is not 32 bytes")
    return origin, int(size_s), root


def parse_signed_note(note):
    """Split a signed note into (text, [(name, key_id, sig)])."""
    if len(note.encode("utf-8")) > 64 * 1024:
        fail("note too large")
    split = note.rfind("\n\n")
    if split < 0:
        fail("no blank line separating text and signatures")
    text, sigs = note[: split + 1], note[split + 2 :]
    if not sigs or not sigs.endswith("\n"):
        fail("signature block empty or not newline-terminated")
    out = []
    for line in sigs[:-1].split("\n"):
        prefix = EM_DASH + " "
        if not line.startswith(prefix):
            fail("signature line does not start with em dash + space")
        rest = line[len(prefix) :]
        parts = rest.split(" ")
        if len(parts) != 2:
            fail("signature line must be '<name> <base64>'")
        name, b64 = parts
        check_key_name(name)
        raw = b64_canonical(b64)
        if len(raw) != 68:
            fail("signature blob is not key_id(4) || sig(64)")
        out.append((name, raw[:4], raw[4:]))
    if len(out) > 100:
        fail("too many signature lines")
    return text, out


def verify_signed_checkpoint(note, trusted, origin_expected, k=None):
    """trusted: list of verifier-key strings. Returns (origin, size, root, set of
    names that signed validly). Raises if the policy is not met."""
    keys = {}
    for vk in trusted:
        name, kid, pub = parse_verifier_key(vk)
        keys[(name, kid)] = pub
    text, sigs = parse_signed_note(note)
    origin, size, root = parse_checkpoint(text)
    if origin != origin_expected:
        fail("unexpected origin %r" % origin)
    good = set()
    bad = []
    for name, kid, sig in sigs:
        pub = keys.get((name, kid))
        if pub is None:
            continue  # unknown key: ignored
        if ed25519_verify_strict(pub, text.encode("utf-8"), sig):
            good.add((name, kid))
        else:
            bad.append(name)
    n = len(keys)
    if k is None:
        k = n // 2 + 1
    if len(good) < k:
        fail("only %d of required %d valid cosignatures (bad: %s)" % (len(good), k, bad))
    return origin, size, root, good, bad


# ---------------------------------------------------------------------------
# Parsing PROTOCOL.md section 6


def parse_vectors(md):
    m = re.search(
        r"<!-- BEGIN GENERATED VECTORS[^>]*-->(.*?)<!-- END GENERATED VECTORS -->",
        md,
        re.S,
    )
    if not m:
        fail("generated-vectors markers not found")
    sec = m.group(1)
    v = {}

    # Keys
    mm = re.search(r"entry signer: seed `([0-9a-f]{64})`, public key `([0-9a-f]{64})`", sec)
    v["signer_seed"] = bytes.fromhex(mm.group(1))
    v["signer_pub"] = bytes.fromhex(mm.group(2))
    v["nodes"] = [
        (name, bytes.fromhex(seed), vk)
        for name, seed, vk in re.findall(
            r"node `([^`]+)`: seed `([0-9a-f]{64})`, verifier key `([^`]+)`", sec
        )
    ]

    # Entry description line
    mm = re.search(
        r'election_id: "([^"]*)", created_unix_ms: (\d+) \+ i, note: \{ text: "entry i" \}.*?'
        r"`timestamp_unix_ms = (\d+) \+ i`",
        sec,
        re.S,
    )
    v["election_id"] = mm.group(1)
    v["created_base"] = int(mm.group(2))
    v["ts_base"] = int(mm.group(3))

    blocks = {}
    for title, body in re.findall(r"\n([^\n`]+?):?\n\n?```\n(.*?)\n```", sec, re.S):
        blocks[title.strip().rstrip(":")] = body
    entries = []
    i = 0
    while ("entry %d" % i) in blocks:
        e = {}
        for line in blocks["entry %d" % i].split("\n"):
            k, val = line.split()
            e[k] = bytes.fromhex(val)
        entries.append(e)
        i += 1
    v["entries"] = entries

    roots = {}
    for line in blocks["### Roots"].split("\n"):
        mm = re.fullmatch(r"size (\d+): ([0-9a-f]{64})", line)
        roots[int(mm.group(1))] = bytes.fromhex(mm.group(2))
    v["roots"] = roots

    def find_block(pattern):
        for title, body in blocks.items():
            mm = re.fullmatch(pattern, title)
            if mm:
                return mm, body
        fail("block %r not found" % pattern)

    mm, body = find_block(r"### Inclusion proof of leaf (\d+) in the tree of size (\d+)")
    v["incl"] = (int(mm.group(1)), int(mm.group(2)), [bytes.fromhex(x) for x in body.split("\n")])
    mm, body = find_block(r"### Consistency proof from size (\d+) to size (\d+)")
    v["cons"] = (int(mm.group(1)), int(mm.group(2)), [bytes.fromhex(x) for x in body.split("\n")])
    mm, body = find_block(r"### Signed checkpoint of size (\d+), cosigned by .*")
    v["ckpt_size"] = int(mm.group(1))
    # The fenced block shows the note's lines; every line of a note ends in \n.
    v["note"] = body + "\n"

    _, body = find_block(r"A chain over the envelope ids of entries .*")
    v["tracking"] = []
    for line in body.split("\n"):
        mm = re.fullmatch(r"code (\d+): ([0-9a-f]{64}) ([0-9A-Z]{4}-[0-9A-Z]{4})", line)
        if not mm:
            fail("bad tracking-code line %r" % line)
        v["tracking"].append((bytes.fromhex(mm.group(2)), mm.group(3)))

    mm = re.search(r"Empty-tree root \(BLAKE3 of the empty string\): `([0-9a-f]{64})`", sec)
    v["empty_root"] = bytes.fromhex(mm.group(1))
    return v


# ---------------------------------------------------------------------------
# Test runner


class Runner:
    def __init__(self):
        self.passed = 0
        self.failed = []

    def check(self, name, fn):
        try:
            ok = fn()
            if ok is None:
                ok = True
        except VerifyError as e:
            ok = False
            name = "%s (%s)" % (name, e)
        except Exception as e:  # unexpected crash counts as failure
            ok = False
            name = "%s (exception %r)" % (name, e)
        if ok:
            self.passed += 1
        else:
            self.failed.append(name)
            print("FAIL: " + name)

    def eq(self, name, got, want):
        self.check(name, lambda: got == want or fail("got %s, want %s" % (_h(got), _h(want))))

    def rejects(self, name, fn):
        """fn must return False or raise VerifyError."""

        def inner():
            try:
                r = fn()
            except VerifyError:
                return True
            return r is False

        self.check("reject: " + name, inner)


def _h(x):
    return x.hex() if isinstance(x, (bytes, bytearray)) else repr(x)


def flip(b, byte=0, bit=0):
    b = bytearray(b)
    b[byte] ^= 1 << bit
    return bytes(b)


def main(argv):
    here = os.path.dirname(os.path.abspath(__file__))
    doc = argv[1] if len(argv) > 1 else os.path.join(here, "..", "..", "docs", "PROTOCOL.md")
    with open(doc, encoding="utf-8") as f:
        md = f.read()

    R = Runner()
    try:
        v = parse_vectors(md)
    except Exception as e:
        print("FAIL: could not parse vectors: %r" % (e,))
        print("0 passed, 1 failed")
        return 1
    R.check("vectors parsed: 5 entries, 3 nodes", lambda: len(v["entries"]) == 5 and len(v["nodes"]) == 3)

    # --- keys
    R.eq("entry signer public key from seed", pub_from_seed(v["signer_seed"]), v["signer_pub"])
    node_pubs = {}
    for name, seed, vk in v["nodes"]:
        pub = pub_from_seed(seed)
        node_pubs[name] = pub
        R.eq("verifier key string of %s" % name, verifier_key(name, pub), vk)
        R.check(
            "verifier key of %s parses" % name,
            lambda vk=vk, name=name, pub=pub: parse_verifier_key(vk) == (name, key_id(name, pub), pub),
        )

    # --- entries and leaves
    leaves = []
    for i, e in enumerate(v["entries"]):
        body, sig, ld = e["body"], e["signature"], e["leaf_data"]
        leaves.append(ld)
        R.check("entry %d signature verifies (strict)" % i,
                lambda: ed25519_verify_strict(v["signer_pub"], ENTRY_DOMAIN + body, sig))
        R.eq("entry %d signature is deterministic RFC 8032 signature" % i,
             sign(v["signer_seed"], ENTRY_DOMAIN + body), sig)
        R.eq("entry %d envelope_id" % i, envelope_id(v["signer_pub"], body), e["envelope_id"])
        R.eq("entry %d leaf_hash" % i, leaf_hash(ld), e["leaf_hash"])

        def chk_leaf(i=i, body=body, sig=sig, ld=ld):
            ts, b2, s2, sig2 = verify_leaf(ld)
            if ts != v["ts_base"] + i:
                fail("timestamp %d" % ts)
            if (b2, s2, sig2) != (body, v["signer_pub"], sig):
                fail("embedded envelope differs from body/signer/signature")
            return True

        R.check("entry %d leaf_data decodes canonically and matches envelope" % i, chk_leaf)

        # Rebuild leaf_data using the concrete layout in section 2.
        E = (b"\x0a" + encode_varint(len(body)) + body + b"\x12\x20" + v["signer_pub"]
             + b"\x1a\x40" + sig)
        built = b"\x08" + encode_varint(v["ts_base"] + i) + b"\x12" + encode_varint(len(E)) + E
        R.eq("entry %d leaf_data equals section 2 layout" % i, built, ld)

        def chk_body(i=i, body=body):
            # EntryBody: election_id (1), created_unix_ms (2), exactly one kind
            # in fields 10..24. The Note message layout (text = field 1) is an
            # assumption: PROTOCOL.md defers to entry.proto for it.
            fields = parse_fields(body)
            nums = [f[0] for f in fields]
            if nums[:2] != [1, 2] or len(nums) != 3:
                fail("unexpected fields %s" % nums)
            if fields[0][2] != v["election_id"].encode():
                fail("election_id")
            if fields[1][1] != 0 or fields[1][2] != v["created_base"] + i:
                fail("created_unix_ms")
            kno, kwt, kval = fields[2]
            if not 10 <= kno <= 24 or kwt != 2:
                fail("kind field %d" % kno)
            inner = parse_fields(kval)
            if inner != [(1, 2, ("entry %d" % i).encode())]:
                fail("note text")
            return True

        R.check("entry %d body decodes (election_id, created_unix_ms, one kind)" % i, chk_body)

    # --- Merkle roots
    R.eq("empty root = BLAKE3('')", H(b""), v["empty_root"])
    R.eq("roots listed for sizes 0..5", sorted(v["roots"]), list(range(len(leaves) + 1)))
    for n, root in sorted(v["roots"].items()):
        R.eq("MTH of size %d" % n, mth(leaves[:n]), root)

    # --- inclusion proof vector
    idx, size, iproof = v["incl"]
    root = v["roots"][size]
    R.eq("inclusion proof equals PATH(%d, D[%d])" % (idx, size), path(idx, leaves[:size]), iproof)
    R.check("inclusion proof verifies",
            lambda: verify_inclusion(idx, size, leaf_hash(leaves[idx]), iproof, root))
    # --- consistency proof vector
    m, n, cproof = v["cons"]
    R.eq("consistency proof equals PROOF(%d, D[%d])" % (m, n), proof(m, leaves[:n]), cproof)
    R.check("consistency proof verifies",
            lambda: verify_consistency(m, n, v["roots"][m], v["roots"][n], cproof))

    # --- exhaustive self-consistency over the vector tree
    def all_inclusion():
        for sz in range(1, len(leaves) + 1):
            for i in range(sz):
                if not verify_inclusion(i, sz, leaf_hash(leaves[i]), path(i, leaves[:sz]), v["roots"][sz]):
                    fail("inclusion %d in %d" % (i, sz))
        return True

    def all_consistency():
        for b in range(0, len(leaves) + 1):
            for a in range(0, b + 1):
                if not verify_consistency(a, b, v["roots"][a], v["roots"][b], proof(a, leaves[:b])):
                    fail("consistency %d -> %d" % (a, b))
        return True

    R.check("all inclusion proofs (every index, every size) verify", all_inclusion)
    R.check("all consistency proofs (every pair of sizes) verify", all_consistency)

    # --- signed checkpoint
    note = v["note"]
    trusted = [vk for _, _, vk in v["nodes"]]
    origin_expected = note.split("\n", 1)[0]

    def chk_ckpt():
        origin, size, croot, good, bad = verify_signed_checkpoint(note, trusted, origin_expected)
        if size != v["ckpt_size"]:
            fail("size %d != %d" % (size, v["ckpt_size"]))
        if croot != mth(leaves[:size]):
            fail("checkpoint root != computed MTH")
        if len(good) != 3 or bad:
            fail("expected all 3 signatures valid, got %d good, bad=%s" % (len(good), bad))
        return True

    R.check("signed checkpoint verifies (3/3 cosignatures, size and root match tree)", chk_ckpt)
    R.eq("checkpoint origin", origin_expected, "vectors.bboard.example/v1")

    text, sigs = parse_signed_note(note)
    for name, kid, sig in sigs:
        pub = node_pubs.get(name)
        R.eq("signature line %s key id" % name, kid, key_id(name, pub) if pub else None)
        R.eq("signature line %s is deterministic Ed25519 over the text" % name,
             sign(dict((nm, sd) for nm, sd, _ in v["nodes"])[name], text.encode()), sig)

    # Receipt check end-to-end for leaf idx (section 5)
    def chk_receipt():
        lh = leaf_hash(leaves[idx])
        verify_leaf(leaves[idx])
        _, csize, croot, _, _ = verify_signed_checkpoint(note, trusted, origin_expected)
        if not (idx < csize and verify_inclusion(idx, csize, lh, path(idx, leaves[:csize]), croot)):
            fail("receipt inclusion")
        return True

    R.check("receipt for leaf %d verifies end to end" % idx, chk_receipt)

    # -----------------------------------------------------------------------
    # Negative checks
    ld0 = leaves[idx]
    # bit flips in a leaf
    for byte in (0, 5, len(ld0) // 2, len(ld0) - 1):
        bad_leaf = flip(ld0, byte, 0)
        R.rejects("leaf %d bit flip at byte %d: leaf hash differs" % (idx, byte),
                  lambda b=bad_leaf: leaf_hash(b) == v["entries"][idx]["leaf_hash"])
        R.rejects("leaf %d bit flip at byte %d: inclusion proof fails" % (idx, byte),
                  lambda b=bad_leaf: verify_inclusion(idx, size, leaf_hash(b), iproof, root))
    # signature bytes in the leaf: canonical but signature must fail
    R.rejects("leaf with flipped signature bit fails verify_leaf",
              lambda: verify_leaf(flip(ld0, len(ld0) - 10, 3)) and True)
    R.rejects("leaf with flipped body bit fails verify_leaf",
              lambda: verify_leaf(flip(ld0, 20, 0)) and True)
    # bit flips in proofs
    for j in range(len(iproof)):
        bad = list(iproof)
        bad[j] = flip(bad[j], 7, 2)
        R.rejects("inclusion proof hash %d bit flip" % j,
                  lambda bad=bad: verify_inclusion(idx, size, leaf_hash(ld0), bad, root))
    for j in range(len(cproof)):
        bad = list(cproof)
        bad[j] = flip(bad[j], 31, 7)
        R.rejects("consistency proof hash %d bit flip" % j,
                  lambda bad=bad: verify_consistency(m, n, v["roots"][m], v["roots"][n], bad))
    R.rejects("inclusion proof too short",
              lambda: verify_inclusion(idx, size, leaf_hash(ld0), iproof[:-1], root))
    R.rejects("inclusion proof too long",
              lambda: verify_inclusion(idx, size, leaf_hash(ld0), iproof + [iproof[0]], root))
    R.rejects("inclusion proof index >= size",
              lambda: verify_inclusion(size, size, leaf_hash(ld0), iproof, root))
    R.rejects("inclusion proof at wrong index",
              lambda: verify_inclusion(idx + 1, size, leaf_hash(ld0), iproof, root))
    R.rejects("consistency proof too short",
              lambda: verify_consistency(m, n, v["roots"][m], v["roots"][n], cproof[:-1]))
    R.rejects("consistency proof with old_size > new_size",
              lambda: verify_consistency(n, m, v["roots"][n], v["roots"][m], cproof))
    R.rejects("consistency old_size == new_size with non-empty proof",
              lambda: verify_consistency(n, n, v["roots"][n], v["roots"][n], [cproof[0]]))
    R.rejects("consistency old_size == new_size with different roots",
              lambda: verify_consistency(n, n, v["roots"][m], v["roots"][n], []))
    R.rejects("consistency old_size = 0 with non-empty proof",
              lambda: verify_consistency(0, n, v["roots"][0], v["roots"][n], [cproof[0]]))
    R.rejects("consistency with wrong old root",
              lambda: verify_consistency(m, n, flip(v["roots"][m]), v["roots"][n], cproof))

    # checkpoint root flip (re-encode the note with a flipped root)
    lines = note.split("\n")
    bad_root = base64.b64encode(flip(root, 0, 0)).decode()
    note_badroot = "\n".join(lines[:2] + [bad_root] + lines[3:])

    def ckpt_matches_tree(nt):
        # signature verification must fail (policy unmet) for a tampered text
        _, sz, croot, _, _ = verify_signed_checkpoint(nt, trusted, origin_expected)
        return croot == mth(leaves[:sz])

    R.rejects("checkpoint root bit flip invalidates cosignatures", lambda: ckpt_matches_tree(note_badroot))
    R.rejects("checkpoint root bit flip does not match computed root",
              lambda: parse_checkpoint(note_badroot[: note_badroot.index("\n\n") + 1])[2] == root)
    R.rejects("checkpoint root bit flip: receipt inclusion against it fails",
              lambda: verify_inclusion(idx, size, leaf_hash(ld0), iproof, flip(root, 0, 0)))

    # signature flips: each signature individually becomes invalid and is reported
    sig_lines = note[note.rindex("\n\n") + 2 :].split("\n")[:-1]
    for j, sl in enumerate(sig_lines):
        name, b64 = sl[2:].split(" ")
        raw = base64.b64decode(b64)
        bad_line = EM_DASH + " " + name + " " + base64.b64encode(flip(raw, 4 + 10, 1)).decode()
        bad_sigs = list(sig_lines)
        bad_sigs[j] = bad_line
        bad_note = text + "\n" + "\n".join(bad_sigs) + "\n"

        def chk(bn=bad_note, name=name):
            _, _, _, good, bad = verify_signed_checkpoint(bn, trusted, origin_expected)
            return len(good) == 3 or name not in bad

        R.rejects("signature of %s bit flip is not counted and reported" % name, chk)
        R.rejects("signature of %s bit flip fails Ed25519 verify" % name,
                  lambda raw=raw, name=name: ed25519_verify_strict(
                      node_pubs[name], text.encode(), flip(raw[4:], 10, 1)))
    # quorum: only one of three valid signatures is below k = 2
    one_sig_note = text + "\n" + sig_lines[0] + "\n"
    R.rejects("1 of 3 cosignatures is below default k = 2",
              lambda: verify_signed_checkpoint(one_sig_note, trusted, origin_expected) and True)
    R.check("2 of 3 cosignatures meets default k = 2",
            lambda: bool(verify_signed_checkpoint(text + "\n" + "\n".join(sig_lines[:2]) + "\n",
                                                  trusted, origin_expected)))
    R.rejects("wrong origin", lambda: verify_signed_checkpoint(note, trusted, "other.example/v1") and True)
    # entry signature flip
    e0 = v["entries"][0]
    R.rejects("entry 0 signature bit flip",
              lambda: ed25519_verify_strict(v["signer_pub"], ENTRY_DOMAIN + e0["body"], flip(e0["signature"], 0, 0)))
    R.rejects("entry 0 signature without domain prefix",
              lambda: ed25519_verify_strict(v["signer_pub"], e0["body"], e0["signature"]))
    # strictness: non-canonical S (S + l) and small-order public key / R
    L = 2**252 + 27742317777372353535851937790883648493
    s = int.from_bytes(e0["signature"][32:], "little")
    sig_sl = e0["signature"][:32] + (s + L).to_bytes(32, "little")
    R.rejects("non-canonical S (S + l)",
              lambda: ed25519_verify_strict(v["signer_pub"], ENTRY_DOMAIN + e0["body"], sig_sl))
    identity = (1).to_bytes(32, "little")
    R.rejects("small-order (identity) public key",
              lambda: ed25519_verify_strict(identity, b"x", identity + bytes(32)))
    R.check("small-order detection: identity and order-2 point are small order",
            lambda: is_small_order(identity) and is_small_order((P - 1).to_bytes(32, "little"))
            and not is_small_order(v["signer_pub"]))

    # non-canonical leaves
    ts = v["ts_base"] + idx
    _, body, signer, sig = decode_leaf(ld0)
    E = b"\x0a" + encode_varint(len(body)) + body + b"\x12\x20" + signer + b"\x1a\x40" + sig
    R.rejects("leaf with explicit zero timestamp",
              lambda: decode_leaf(b"\x08\x00\x12" + encode_varint(len(E)) + E) and True)
    R.check("leaf without timestamp (0 omitted) decodes",
            lambda: decode_leaf(b"\x12" + encode_varint(len(E)) + E)[0] == 0)
    R.rejects("leaf with fields out of order",
              lambda: decode_leaf(b"\x12" + encode_varint(len(E)) + E + b"\x08" + encode_varint(ts)) and True)
    R.rejects("leaf with unknown field",
              lambda: decode_leaf(ld0 + b"\x18\x01") and True)
    R.rejects("leaf with non-minimal varint length",
              lambda: decode_leaf(b"\x08" + encode_varint(ts) + b"\x12" + bytes([0x80 | len(E) & 0x7F, len(E) >> 7 | 0x80, 0x00]) + E) and True)
    E_swapped = b"\x12\x20" + signer + b"\x0a" + encode_varint(len(body)) + body + b"\x1a\x40" + sig
    R.rejects("envelope with fields out of order",
              lambda: decode_leaf(b"\x08" + encode_varint(ts) + b"\x12" + encode_varint(len(E_swapped)) + E_swapped) and True)
    R.rejects("truncated leaf", lambda: decode_leaf(ld0[:-1]) and True)

    # checkpoint text rules
    R.rejects("checkpoint with extension line",
              lambda: parse_checkpoint(text + "ext line\n") and True)
    R.rejects("checkpoint size with leading zero",
              lambda: parse_checkpoint(text.replace("\n5\n", "\n05\n")) and True)
    R.rejects("checkpoint not ending in newline", lambda: parse_checkpoint(text[:-1]) and True)
    R.rejects("checkpoint with empty origin", lambda: parse_checkpoint(text[text.index("\n"):]) and True)
    R.rejects("checkpoint root non-canonical base64",
              lambda: parse_checkpoint(text.replace("RV4=", "RV5=")) and True)
    R.rejects("signature line with hyphen instead of em dash",
              lambda: parse_signed_note(note.replace(EM_DASH + " cec", "- cec")) and True)
    R.rejects("verifier key with wrong key id",
              lambda: parse_verifier_key(trusted[0].replace("+9b33cea3+", "+9b33cea4+")) and True)

    # tracking codes (§7.3): a chain over entries 0, 1, 2 from 32 zero bytes
    previous = bytes(32)
    for i, (code, short) in enumerate(v["tracking"]):
        want = tracking_code(previous, v["entries"][i]["envelope_id"])
        R.eq("tracking code %d" % i, code, want)
        R.eq("short tracking code %d" % i, short, short_tracking_code(want))
        previous = want
    R.check("tracking code depends on the previous code",
            lambda: tracking_code(bytes(32), v["entries"][1]["envelope_id"]) != v["tracking"][1][0])

    total = R.passed + len(R.failed)
    if R.failed:
        print("failed checks:")
        for f in R.failed:
            print("  - " + f)
    print("%d passed, %d failed" % (R.passed, len(R.failed)))
    return 0 if not R.failed else 1


if __name__ == "__main__":
    sys.exit(main(sys.argv))
