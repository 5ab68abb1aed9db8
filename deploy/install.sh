#!/usr/bin/env bash
# Install modelmesh (ModelMesh Serving, re-implemented) into the cluster of the current kubeconfig
# context: CRDs, RBAC, the controller and its webhook, model-serving-config-defaults and the
# built-in runtimes; with --quickstart also etcd and MinIO. Safe to re-run: every object is
# applied server-side with one field manager, so a second run changes nothing.
# `deploy/install.sh --help` lists the options; docs/install.md explains them.
set -Eeuo pipefail

DEPLOY_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
KUBECTL="${KUBECTL:-kubectl}"
FIELD_MANAGER=modelmesh-install
WEBHOOK_CONFIG=modelmesh-servingruntime.serving.kserve.io
WEBHOOK_SERVICE=modelmesh-webhook-server-service
WEBHOOK_SECRET=modelmesh-webhook-server-cert
ETCD_SECRET=model-serving-etcd
WAIT_TIMEOUT="${MODELMESH_INSTALL_TIMEOUT:-300s}"

namespace=modelmesh-serving
user_namespaces=()
quickstart=false
namespace_scope=false
delete=false
self_signed_ca=false
wait_ready=true
dev_mode_logging=false

usage() {
  cat <<EOF
usage: $0 [options]

Installs modelmesh into the cluster of the current kubeconfig context (needs cluster-admin:
it creates CRDs, a webhook configuration and, in cluster scope, a ClusterRole).

  -n, --namespace NS          namespace of the controller (default: modelmesh-serving; created if missing)
  -u, --user-namespaces "A B" also serve these namespaces (labels them modelmesh-enabled=true;
                              cluster scope only; with --quickstart copies the MinIO storage-config)
      --quickstart            also install etcd and MinIO (with the example models) and their
                              secrets, for experiments: no persistence, no auth
      --namespace-scope-mode  serve only NS: a Role instead of a ClusterRole, ServingRuntimes
                              instead of ClusterServingRuntimes, no ClusterServingRuntime CRD
      --enable-self-signed-ca make the webhook's certificate here with openssl (default: cert-manager
                              issues it, and must be installed)
      --no-wait               do not wait for pods to become ready (e.g. a cluster without nodes)
  -dev, --dev-mode-logging    human-readable debug logs in the controller
  -d, --delete                remove what this script installs (with the same -n/-u options) and exit;
                              this deletes the CRDs and with them every InferenceService, Predictor
                              and ServingRuntime in the cluster. The storage-config secret is kept
                              unless --quickstart made it.
  -h, --help                  this help

Needs: kubectl >= 1.21 (kustomize components), access to the cluster, openssl for
--enable-self-signed-ca. Without --quickstart the etcd secret '$ETCD_SECRET' (key etcd_connection)
must exist in NS (docs/install.md#etcd).
Environment: KUBECTL (kubectl binary), MODELMESH_INSTALL_TIMEOUT (wait per step, default 300s).
EOF
}

die() { printf 'install.sh: error: %s\n' "$*" >&2; exit 1; }
info() { printf '==> %s\n' "$*" >&2; }
k() { "$KUBECTL" "$@"; }
b64() { base64 <"$1" | tr -d '\n'; }  # one line, with GNU and BSD base64 alike
# api_serves RESOURCE.GROUP [WAIT_S]: whether the apiserver's discovery lists RESOURCE.GROUP. The
# list goes into a variable, not a pipe: `grep -q` closing the pipe early fails the pipeline
# under pipefail. Discovery can lag a CRD that was only just established, so when the CRD
# exists the check is repeated for up to WAIT_S seconds.
api_serves() {
  local resource=${1%%.*} group=${1#*.} wait_s=${2:-0} listed deadline
  k get crd "$1" >/dev/null 2>&1 || wait_s=0
  deadline=$((SECONDS + wait_s))
  while :; do
    listed=$(k api-resources --api-group="$group" -o name 2>/dev/null || true)
    [[ $'\n'$listed$'\n' == *$'\n'"$resource.$group"$'\n'* ]] && return 0
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}
# apply FILE: server-side apply, skipped when the server-side diff is empty (some apiservers,
# 1.20 among them, rewrite managedFields on a no-op apply of Secrets and webhook configurations).
apply() {
  local rc=0
  k diff --server-side --force-conflicts --field-manager="$FIELD_MANAGER" -f "$1" >/dev/null 2>&1 || rc=$?
  if [[ $rc -eq 0 ]]; then
    info "unchanged: $(names_of "$1" | paste -sd' ')"
    return 0
  fi
  k apply --server-side --force-conflicts --field-manager="$FIELD_MANAGER" -f "$1" >&2
}

while (($# > 0)); do
  case "$1" in
    -h | --help) usage; exit 0 ;;
    -n | --namespace) [[ $# -ge 2 && -n $2 ]] || die "$1 needs a namespace"; namespace="$2"; shift ;;
    -u | --user-namespaces) [[ $# -ge 2 ]] || die "$1 needs a list of namespaces"; read -r -a user_namespaces <<<"$2"; shift ;;
    --quickstart) quickstart=true ;;
    --namespace-scope-mode) namespace_scope=true ;;
    --enable-self-signed-ca) self_signed_ca=true ;;
    --no-wait) wait_ready=false ;;
    -dev | --dev-mode-logging) dev_mode_logging=true ;;
    -d | --delete) delete=true ;;
    *) die "unknown option '$1' (see --help)" ;;
  esac
  shift
done
[[ ${NAMESPACE_SCOPE_MODE:-false} == true ]] && namespace_scope=true
[[ $namespace =~ ^[a-z0-9]([-a-z0-9]*[a-z0-9])?$ ]] || die "invalid namespace name '$namespace'"
if [[ $namespace_scope == true && ${#user_namespaces[@]} -gt 0 ]]; then
  die "--user-namespaces needs cluster scope: in --namespace-scope-mode the controller serves only '$namespace'"
fi

#################### prerequisites ####################
command -v "$KUBECTL" >/dev/null 2>&1 \
  || die "kubectl not found ('$KUBECTL' is not on PATH): install kubectl >= 1.21 or set KUBECTL=/path/to/kubectl"
if ! out=$(k kustomize "$DEPLOY_DIR/certmanager" 2>&1); then
  die "'$KUBECTL kustomize' cannot build deploy/ (kubectl >= 1.21 is needed for kustomize components): $out"
fi
context=$(k config current-context 2>/dev/null || echo "none")
if ! out=$(k get --raw /version 2>&1); then
  die "cannot reach the cluster of kubeconfig context '$context': ${out##*$'\n'}"
fi

can_i() {  # can_i VERB RESOURCE [ARGS...]: true when the current user may
  [[ $(k auth can-i "$@" 2>/dev/null || true) == yes ]]
}
verb=create
[[ $delete == true ]] && verb=delete
can_i "$verb" customresourcedefinitions.apiextensions.k8s.io \
  || die "not allowed to $verb CustomResourceDefinitions in context '$context' (kubectl auth can-i $verb crd: no): ask a cluster admin to run this script"
if [[ $namespace_scope != true ]]; then
  can_i "$verb" clusterroles.rbac.authorization.k8s.io \
    || die "not allowed to $verb ClusterRoles in context '$context': ask a cluster admin, or use --namespace-scope-mode"
fi
can_i "$verb" validatingwebhookconfigurations.admissionregistration.k8s.io \
  || die "not allowed to $verb ValidatingWebhookConfigurations in context '$context': ask a cluster admin to run this script"

#################### rendering ####################
work=$(mktemp -d "${TMPDIR:-/tmp}/modelmesh-install.XXXXXX")
trap 'rm -rf "$work"' EXIT
# kustomize needs relative paths; a copy of deploy/ in the work dir gives them without writing
# into this checkout.
cp -R "$DEPLOY_DIR" "$work/deploy"

# render NAME BASE [extra kustomization lines]: kustomize BASE into NAMESPACE, output $work/NAME.yaml.
render() {
  local name=$1 base=$2 extra=${3:-}
  mkdir -p "$work/$name"
  # A copy of deploy/ sits next to it (see below), so the paths are relative and portable.
  printf 'apiVersion: kustomize.config.k8s.io/v1beta1\nkind: Kustomization\nnamespace: %s\nresources:\n  - ../deploy/%s\n%s\n' \
    "$namespace" "$base" "${extra//@DEPLOY@/../deploy}" >"$work/$name/kustomization.yaml"
  k kustomize "$work/$name" >"$work/$name.yaml" || die "kustomize build of deploy/$base failed"
}

# docs_where LINE FILE / docs_where_not LINE FILE: the YAML documents of FILE that have (lack) a
# top-level line LINE, e.g. 'kind: Secret'.
docs_where() { awk -v line="$1" -v keep=1 "$DOCS_AWK" "$2"; }
docs_where_not() { awk -v line="$1" -v keep=0 "$DOCS_AWK" "$2"; }
# shellcheck disable=SC2016 # awk program, not shell
DOCS_AWK='BEGIN { RS = "\n---\n" } {
  sub(/^---\n/, ""); sub(/\n+$/, ""); has = ("\n" $0 "\n") ~ ("\n" line "\n"); if (has == keep) printf "---\n%s\n", $0 }'
# names_of FILE: the metadata.name of each document of FILE.
names_of() { awk 'BEGIN { RS = "\n---\n" } match($0, /\nmetadata:\n(  [^\n]*\n)*  name: [^\n]+/) { n = substr($0, RSTART, RLENGTH); sub(/.*name: /, "", n); print n }' "$1"; }

# The namespace transformer does not reach names inside strings; these replacements do.
NAMESPACE_REPLACEMENTS='replacements:
  - source: {kind: Service, name: modelmesh-webhook-server-service, fieldPath: metadata.namespace}
    targets:
      - select: {kind: ValidatingWebhookConfiguration}
        fieldPaths: [webhooks.*.clientConfig.service.namespace]
      - select: {kind: ClusterRoleBinding, name: modelmesh-controller-rolebinding}
        fieldPaths: [subjects.0.namespace]
        options: {create: true}'
CERT_MANAGER_REPLACEMENTS='      - select: {kind: Certificate, name: modelmesh-webhook-server-cert}
        fieldPaths: [spec.dnsNames.0, spec.dnsNames.1]
        options: {delimiter: ".", index: 1}
      - select: {kind: ValidatingWebhookConfiguration}
        fieldPaths: [metadata.annotations.cert-manager\.io/inject-ca-from]
        options: {delimiter: "/", index: 0}'

render_controller() {  # render_controller SCOPE_BASE CA_BUNDLE
  local base=$1 ca_bundle=${2:-} extra="$NAMESPACE_REPLACEMENTS"
  if [[ $self_signed_ca != true ]]; then
    extra="components:
  - @DEPLOY@/certmanager
$NAMESPACE_REPLACEMENTS
$CERT_MANAGER_REPLACEMENTS"
  fi
  if [[ -n $ca_bundle ]]; then
    extra+="
patches:
  - target: {kind: ValidatingWebhookConfiguration, name: $WEBHOOK_CONFIG}
    patch: |-
      - {op: add, path: /webhooks/0/clientConfig/caBundle, value: $ca_bundle}"
  fi
  if [[ $dev_mode_logging == true ]]; then
    [[ $extra == *"patches:"* ]] || extra+=$'\npatches:'
    extra+="
  - target: {kind: Deployment, name: modelmesh-controller}
    patch: |-
      - {op: add, path: /spec/template/spec/containers/0/env/-, value: {name: DEV_MODE_LOGGING, value: \"true\"}}"
  fi
  render controller "$base" "$extra"
  # The webhook configuration goes in last (after the runtimes): until the controller answers,
  # it would reject every runtime.
  docs_where 'kind: ValidatingWebhookConfiguration' "$work/controller.yaml" >"$work/webhook.yaml"
  docs_where_not 'kind: ValidatingWebhookConfiguration' "$work/controller.yaml" >"$work/controller-rest.yaml"
}

render_quickstart() {
  render quickstart quickstart
  sed "s/\.modelmesh-serving\.svc/.${namespace}.svc/g" "$work/quickstart.yaml" >"$work/quickstart.ns.yaml"
  mv "$work/quickstart.ns.yaml" "$work/quickstart.yaml"
}

wait_gone() {  # wait_gone SECONDS KIND/NAME...: true once none of them exists
  local deadline=$((SECONDS + $1)); shift
  while [[ -n $(k get "$@" --ignore-not-found -o name 2>/dev/null) ]]; do
    ((SECONDS < deadline)) || return 1
    sleep 1
  done
}

runtimes_base() { [[ $namespace_scope == true ]] && echo namespace-runtimes || echo runtimes; }

#################### delete ####################
if [[ $delete == true ]]; then
  info "deleting modelmesh from namespace $namespace (context $context)"
  k delete validatingwebhookconfiguration "$WEBHOOK_CONFIG" --ignore-not-found >&2
  for base in runtimes namespace-runtimes; do
    render "rt-$base" "$base"
    k delete -f "$work/rt-$base.yaml" --ignore-not-found >&2 2>/dev/null || true
  done
  # Objects the controller made: runtime Deployments, Services, tc-config, HPAs, etcd secret copies.
  served=("$namespace" ${user_namespaces[@]+"${user_namespaces[@]}"})
  if [[ $namespace_scope != true ]]; then
    while read -r labelled; do
      served+=("$labelled")
    done < <(k get namespaces -l modelmesh-enabled=true -o jsonpath='{range .items[*]}{.metadata.name}{"\n"}{end}' 2>/dev/null || true)
  fi
  for ns in $(printf '%s\n' "${served[@]}" | sort -u); do
    [[ -n $ns ]] || continue
    k delete deployments,services,configmaps,secrets,horizontalpodautoscalers.autoscaling -n "$ns" \
      -l app.kubernetes.io/managed-by=modelmesh-controller --ignore-not-found >&2 || true
  done
  self_signed_ca=true  # names only; cert-manager objects go by label below
  for base in default namespace-scope; do
    render_controller "$base"
    k delete -f "$work/controller.yaml" --ignore-not-found --wait=false >&2
  done
  # Deleting the CRDs deletes every InferenceService and Predictor; the controller that would
  # have removed its finalizer from them is gone with the mesh, so this script removes it.
  for kind in inferenceservices.serving.kserve.io predictors.serving.kserve.io; do
    k get "$kind" -A -o jsonpath='{range .items[*]}{.metadata.namespace}{" "}{.metadata.name}{" "}{.metadata.finalizers}{"\n"}{end}' 2>/dev/null \
      | while read -r ns name finalizers; do
          [[ $finalizers == *modelmesh.serving.kserve.io/* ]] || continue
          k patch "$kind" "$name" -n "$ns" --type=merge -p '{"metadata":{"finalizers":null}}' >/dev/null || true
        done || true
  done
  crds=()
  while read -r crd; do crds+=("$crd"); done < <(docs_where 'kind: CustomResourceDefinition' "$work/controller.yaml" | names_of /dev/stdin)
  wait_gone 120 "${crds[@]/#/customresourcedefinition/}" \
    || die "the CRDs are still being deleted: kubectl get crd ${crds[*]} -o yaml (a finalizer of another controller?)"
  if api_serves certificates.cert-manager.io; then
    k delete certificates.cert-manager.io,issuers.cert-manager.io -n "$namespace" \
      -l app.kubernetes.io/managed-by=modelmesh-install --ignore-not-found >&2 || true
  fi
  k delete secret "$WEBHOOK_SECRET" -n "$namespace" --ignore-not-found >&2
  # Quickstart objects carry its label; an etcd or storage secret you made yourself does not.
  for ns in "$namespace" ${user_namespaces[@]+"${user_namespaces[@]}"}; do
    k delete deployments,services,secrets -n "$ns" -l app.kubernetes.io/part-of=modelmesh-quickstart \
      --ignore-not-found >&2 2>/dev/null || true
  done
  for ns in ${user_namespaces[@]+"${user_namespaces[@]}"}; do
    k label namespace "$ns" modelmesh-enabled- >/dev/null 2>&1 || true
  done
  info "modelmesh deleted from $namespace (the namespace itself is kept)"
  exit 0
fi

#################### install ####################
info "installing modelmesh into namespace $namespace (context $context, $([[ $namespace_scope == true ]] && echo namespace || echo cluster) scope)"
if ! k get namespace "$namespace" >/dev/null 2>&1; then
  k create namespace "$namespace" >&2 || die "cannot create namespace $namespace"
fi

if [[ $quickstart == true ]]; then
  info "quickstart: etcd and MinIO"
  render_quickstart
  apply "$work/quickstart.yaml"
  if [[ $wait_ready == true ]]; then
    { k rollout status deployment/etcd -n "$namespace" --timeout="$WAIT_TIMEOUT" >&2 \
        && k rollout status deployment/minio -n "$namespace" --timeout="$WAIT_TIMEOUT" >&2; } \
      || die "etcd / MinIO did not become ready in $WAIT_TIMEOUT: kubectl describe pods -n $namespace -l 'app in (etcd,minio)'"
  fi
fi

if ! k get secret "$ETCD_SECRET" -n "$namespace" >/dev/null 2>&1; then
  die "the etcd secret '$ETCD_SECRET' is missing in namespace $namespace: create it with key etcd_connection (docs/install.md#etcd), or use --quickstart"
fi
[[ -n $(k get secret "$ETCD_SECRET" -n "$namespace" -o jsonpath='{.data.etcd_connection}') ]] \
  || die "the etcd secret '$ETCD_SECRET' in namespace $namespace has no key etcd_connection (docs/install.md#etcd)"

if ! k get secret storage-config -n "$namespace" >/dev/null 2>&1; then
  info "creating an empty storage-config secret (add your storage entries: docs/storage.md)"
  k create secret generic storage-config -n "$namespace" >&2
fi

ca_bundle=""
if [[ $self_signed_ca == true ]]; then
  ca_bundle=$(k get secret "$WEBHOOK_SECRET" -n "$namespace" -o jsonpath='{.data.ca\.crt}' 2>/dev/null || true)
  if [[ -z $ca_bundle ]]; then
    command -v openssl >/dev/null 2>&1 || die "--enable-self-signed-ca needs openssl on PATH"
    info "making a self-signed CA and the webhook's serving certificate"
    certs="$work/certs"
    mkdir -p "$certs"
    svc="$WEBHOOK_SERVICE"
    {
      openssl req -x509 -newkey rsa:2048 -nodes -days 3650 -subj "/CN=modelmesh-webhook-ca" \
        -keyout "$certs/ca.key" -out "$certs/ca.crt"
      openssl req -newkey rsa:2048 -nodes -subj "/CN=$svc.$namespace.svc" \
        -keyout "$certs/tls.key" -out "$certs/tls.csr"
      printf '%s\n' "subjectAltName=DNS:$svc,DNS:$svc.$namespace,DNS:$svc.$namespace.svc,DNS:$svc.$namespace.svc.cluster.local" \
        "basicConstraints=CA:FALSE" "keyUsage=digitalSignature,keyEncipherment" "extendedKeyUsage=serverAuth" >"$certs/ext"
      openssl x509 -req -days 3650 -in "$certs/tls.csr" -CA "$certs/ca.crt" -CAkey "$certs/ca.key" \
        -CAcreateserial -extfile "$certs/ext" -out "$certs/tls.crt"
    } >/dev/null 2>&1 || die "openssl could not make the webhook certificate"
    cat >"$certs/secret.yaml" <<EOF
apiVersion: v1
kind: Secret
metadata:
  name: $WEBHOOK_SECRET
  namespace: $namespace
  labels:
    app.kubernetes.io/managed-by: modelmesh-install
type: kubernetes.io/tls
data:
  tls.crt: $(b64 "$certs/tls.crt")
  tls.key: $(b64 "$certs/tls.key")
  ca.crt: $(b64 "$certs/ca.crt")
EOF
    apply "$certs/secret.yaml"
    ca_bundle=$(b64 "$certs/ca.crt")
  fi
else
  api_serves certificates.cert-manager.io 30 \
    || die "cert-manager is not installed (no certificates.cert-manager.io): install it, or use --enable-self-signed-ca"
fi

info "CRDs, RBAC, model-serving-config-defaults and the controller"
scope_base=default
[[ $namespace_scope == true ]] && scope_base="namespace-scope"
render_controller "$scope_base" "$ca_bundle"
apply "$work/controller-rest.yaml"
docs_where 'kind: CustomResourceDefinition' "$work/controller.yaml" >"$work/crds.yaml"
crds=()
while read -r crd; do crds+=("$crd"); done < <(names_of "$work/crds.yaml")
k wait --for condition=established --timeout=60s "${crds[@]/#/customresourcedefinition/}" >/dev/null \
  || die "the CRDs did not become established: kubectl get crd ${crds[*]}"
for crd in "${crds[@]}"; do  # established can come a moment before discovery lists it
  api_serves "$crd" 30 || die "the apiserver does not serve $crd: kubectl get crd $crd -o yaml"
done

if [[ $wait_ready == true ]]; then
  info "waiting for the controller to become ready"
  k rollout status deployment/modelmesh-controller -n "$namespace" --timeout="$WAIT_TIMEOUT" >&2 \
    || die "the controller did not become ready in $WAIT_TIMEOUT: kubectl logs -n $namespace deploy/modelmesh-controller (docs/troubleshooting.md)"
fi

info "built-in runtimes ($(runtimes_base))"
render runtimes "$(runtimes_base)"
apply "$work/runtimes.yaml" || die "the runtimes were not accepted; if the webhook could not be reached, is the controller running? (docs/troubleshooting.md)"

info "the validating webhook"
apply "$work/webhook.yaml"

for ns in ${user_namespaces[@]+"${user_namespaces[@]}"}; do
  if ! k get namespace "$ns" >/dev/null 2>&1; then
    info "user namespace $ns does not exist: skipped"
    continue
  fi
  k label namespace "$ns" modelmesh-enabled=true --overwrite >/dev/null
  if [[ $quickstart == true ]]; then
    docs_where 'kind: Secret' "$work/quickstart.yaml" | docs_where '  name: storage-config' /dev/stdin \
      | sed "s/^  namespace: .*/  namespace: $ns/" >"$work/storage-$ns.yaml"
    apply "$work/storage-$ns.yaml"
  fi
  info "serving namespace $ns"
done

info "modelmesh installed in $namespace"
