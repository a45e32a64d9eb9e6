"""VERIFY.md, put in every package: how to check it with openssl and python3 alone (es, en)."""

from __future__ import annotations

VERIFY_MD = r"""# Cómo comprobar este paquete / How to check this package

Español primero; English below. Nada de esto necesita Atalaya ni red.

## Español

Descomprima el paquete en una carpeta vacía (`unzip paquete.zip -d p && cd p`).

1. **Integridad de cada fichero.** `META-INF/manifest.sha256` lista el SHA-256
   de cada fichero del paquete:

       sha256sum -c META-INF/manifest.sha256

   Cada línea debe decir `OK`. Un fichero cambiado, aunque sea en un byte,
   da `FAILED` con su nombre.

2. **Firma de la unidad sobre el manifiesto** (CMS/PKCS#7 separada, DER),
   con el certificado de la CA de la unidad (`ca.pem`, entregado aparte):

       openssl cms -verify -binary -inform DER -in META-INF/manifest.sha256.p7s \
         -content META-INF/manifest.sha256 -CAfile ca.pem -purpose any -out /dev/null

   Debe decir `Verification successful`. Quién firmó:
   `openssl cms -cmsout -print -inform DER -in META-INF/manifest.sha256.p7s | grep -A3 subject`.

3. **Sellos de tiempo RFC 3161.** `stamps/stamps.json` dice, por sello, la raíz
   merkle (`root`, hex) que selló. El sello es de S = SHA-256(raíz R):

    python3 -c "import hashlib as h,sys;print(h.sha256(bytes.fromhex(sys.argv[1])).hexdigest())" R
       openssl ts -verify -in stamps/ID.tsr -digest S -CAfile tsa-ca.pem

   (`tsa-ca.pem`: la CA de la autoridad de sellado). Debe decir
   `Verification: OK`. `openssl ts -reply -in stamps/ID.tsr -text` muestra la hora.

4. **Cada avistamiento está en una raíz sellada.** En `sightings/sightings.json`,
   cada avistamiento tiene `fields`; su codificación canónica es
   `json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True)`;
   su hoja es SHA-256(0x00 ‖ codificación); `stamps/proofs.json` da su índice,
   el tamaño del árbol y el camino de inclusión (RFC 9162 §2.1.3.2, nodo =
   SHA-256(0x01 ‖ izquierda ‖ derecha)). El programa de abajo lo recalcula.

5. **Piezas contra los metadatos.** `metadata/HASH.info` es el diccionario info
   del torrent: su SHA-1 (v1) o SHA-256 (v2) es su nombre
   (`sha1sum metadata/*.info`). En cada transcripción (`transcripts/ID.json`),
   cada pieza v1 (`sha1`) debe tener `expected` igual a los 20 bytes en 20·índice
   de la clave `pieces` del diccionario; cada pieza v2 (`sha256`), subiendo
   `expected` por `proof_path` (índice relativo al fichero: bit 1 = hermano a la
   izquierda), debe dar el `pieces root` del fichero. Las piezas `ok` tienen
   `computed` igual a `expected`. Los bytes recibidos se resumieron y se
   descartaron: el paquete no contiene ningún contenido.

6. **Auditoría.** `audit/extract.json` trae los registros sobre el caso y su
   pista. Cada `hash` es SHA-256 (o HMAC-SHA256 con la clave de auditoría de la
   unidad) de la codificación canónica del resto de campos; un registro sigue
   al anterior por `prev_hash`.

## English

Unzip the package into an empty folder (`unzip package.zip -d p && cd p`).

1. **Every file's integrity.** `META-INF/manifest.sha256` lists every file's
   SHA-256: `sha256sum -c META-INF/manifest.sha256` must say `OK` on every
   line; a file changed by even one byte shows `FAILED` with its name.

2. **The unit's signature over the manifest** (detached CMS/PKCS#7, DER), with
   the unit's CA certificate (`ca.pem`, handed over separately):

       openssl cms -verify -binary -inform DER -in META-INF/manifest.sha256.p7s \
         -content META-INF/manifest.sha256 -CAfile ca.pem -purpose any -out /dev/null

   It must print `Verification successful`.

3. **RFC 3161 time stamps.** `stamps/stamps.json` gives, per stamp, the merkle
   root (`root`, hex) it stamped; the token stamps SHA-256(root):

       openssl ts -verify -in stamps/ID.tsr -digest SHA256_OF_ROOT -CAfile tsa-ca.pem

   It must print `Verification: OK`.

4. **Every sighting lies in a stamped root.** Each sighting's `fields` in
   `sightings/sightings.json`, as canonical JSON (sorted keys, no spaces, ASCII
   escapes), is a leaf: SHA-256(0x00 || encoding); `stamps/proofs.json` gives
   its index, tree size and audit path (RFC 9162 §2.1.3.2; node =
   SHA-256(0x01 || left || right)). The program below recomputes it.

5. **Pieces against the metadata.** `metadata/HASH.info` is the torrent's info
   dictionary, named by its SHA-1 (v1) or SHA-256 (v2). In each transcript a v1
   piece's `expected` is the 20 bytes at 20*index of the dictionary's `pieces`;
   a v2 piece's `expected`, hashed up its `proof_path` (file-relative index; bit
   set = sibling on the left), gives the file's `pieces root`. Pieces marked
   `ok` have `computed` equal to `expected`. Bytes received were hashed and
   dropped: the package holds no content.

6. **Audit.** `audit/extract.json` holds the records about the case and its
   lead; each `hash` is the SHA-256 (or HMAC-SHA256 under the unit's audit key)
   of the canonical JSON of the other fields; `prev_hash` links each record to
   the one before.

## python3 (standard library only) / python3 (sólo la biblioteca estándar)

Run in the unpacked folder / ejecútelo en la carpeta descomprimida:

```python
import hashlib, json

def node(l, r): return hashlib.sha256(b"\x01" + l + r).digest()

def root_from_proof(leaf, index, size, path):  # RFC 9162 2.1.3.2
    fn, sn, r = index, size - 1, leaf
    for p in path:
        if fn & 1 or fn == sn:
            r = node(p, r)
            while fn and not fn & 1:
                fn >>= 1; sn >>= 1
        else:
            r = node(r, p)
        fn >>= 1; sn >>= 1
    assert sn == 0, "proof length"
    return r

stamps = {s["id"]: s for s in json.load(open("stamps/stamps.json"))}
proofs = json.load(open("stamps/proofs.json"))
bad = 0
for s in json.load(open("sightings/sightings.json"))["sightings"]:
    enc = json.dumps(s["fields"], sort_keys=True, separators=(",", ":"), ensure_ascii=True)
    leaf = hashlib.sha256(b"\x00" + enc.encode("ascii")).digest()
    p = proofs[str(s["id"])]
    path = [bytes.fromhex(h) for h in p["path"]]
    root = root_from_proof(leaf, p["leaf_index"], p["tree_size"], path)
    if root.hex() != stamps[p["stamp"]]["root"]:
        bad += 1; print("sighting", s["id"], "does not match its stamped root")
print("sightings checked; failures:", bad)
```
"""
