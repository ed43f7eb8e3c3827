#!/usr/bin/env bash
# Makes what mutual TLS between Volt nodes needs ([security] tls_cert, tls_key, tls_ca), with
# the openssl command-line tool: a certificate authority and, signed by it, one certificate
# and key per name (default: "node" and "client"). Each certificate serves both ends of a
# link (TLS server and client), so one set can serve every role. Meant for tests and small
# clusters; a larger site signs with its own CA instead.
#
# Usage: scripts/make_certs.sh DIR [NAME...]
#   DIR/ca.pem            the CA certificate: [security] tls_ca of every node and client
#   DIR/ca-key.pem        the CA's private key: keep it off the nodes (it signs new members)
#   DIR/NAME.pem          a certificate for NAME: [security] tls_cert
#   DIR/NAME-key.pem      its private key (mode 600): [security] tls_key
# Run again with new names to add members: an existing CA is reused, existing certificates
# are kept. VOLT_CERT_DAYS sets the validity (default 825 days).
set -euo pipefail
if [ $# -lt 1 ] || [ "$1" = "-h" ] || [ "$1" = "--help" ]; then
  sed -n '2,14p' "$0" | sed 's/^# \{0,1\}//'
  [ $# -ge 1 ] && exit 0 || exit 2
fi
dir="$1"
shift
names=("$@")
[ ${#names[@]} -gt 0 ] || names=(node client)
days="${VOLT_CERT_DAYS:-825}"
for name in "${names[@]}"; do
  if ! [[ "$name" =~ ^[A-Za-z0-9._-]+$ ]] || [ "$name" = "ca" ]; then
    echo "make_certs.sh: '$name': expected a name of letters, digits, '.', '_' or '-' (not 'ca')" >&2
    exit 2
  fi
done
command -v openssl >/dev/null || { echo "make_certs.sh: openssl not found (apt-get install openssl)" >&2; exit 1; }
mkdir -p "$dir"
umask 077
# P-256 keys: quick to make and to use in handshakes, and accepted everywhere.
key_opts=(-newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes)
if [ ! -f "$dir/ca.pem" ]; then
  openssl req -x509 "${key_opts[@]}" -keyout "$dir/ca-key.pem" -out "$dir/ca.pem" \
    -subj "/CN=Volt cluster CA" -days "$days" \
    -addext "basicConstraints=critical,CA:TRUE" \
    -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null
  chmod 644 "$dir/ca.pem"
fi
[ -f "$dir/ca-key.pem" ] || { echo "make_certs.sh: $dir/ca.pem exists without ca-key.pem: cannot sign" >&2; exit 1; }
ext=$(mktemp)
trap 'rm -f "$ext" "$dir"/*.csr' EXIT
printf '%s\n' "basicConstraints=critical,CA:FALSE" \
  "keyUsage=critical,digitalSignature,keyEncipherment" \
  "extendedKeyUsage=serverAuth,clientAuth" >"$ext"
for name in "${names[@]}"; do
  [ -f "$dir/$name.pem" ] && continue
  openssl req -new "${key_opts[@]}" -keyout "$dir/$name-key.pem" -out "$dir/$name.csr" \
    -subj "/CN=$name" 2>/dev/null
  openssl x509 -req -in "$dir/$name.csr" -CA "$dir/ca.pem" -CAkey "$dir/ca-key.pem" \
    -CAcreateserial -out "$dir/$name.pem" -days "$days" -extfile "$ext" 2>/dev/null
  chmod 644 "$dir/$name.pem"
  echo "make_certs.sh: $dir/$name.pem and $dir/$name-key.pem (signed by $dir/ca.pem)"
done
