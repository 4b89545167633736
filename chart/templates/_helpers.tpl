{{/*
Naming. As in the Consul chart: fullname is fullnameOverride, else global.name, else
"<release>-<name>"; name is nameOverride, else "consul" (the Consul chart's name, so that a values file
written for it gives the same object prefix, the same `app` label and the same
<FULLNAME>_DNS_SERVICE_HOST variable the engine reads). Both are cut to 63 characters without a
trailing "-".
*/}}
{{- define "consul.name" -}}
{{- default "consul" .Values.nameOverride | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{- define "consul.fullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if .Values.global.name -}}
{{- .Values.global.name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" .Release.Name (include "consul.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{- define "consul.chart" -}}
{{- printf "%s-helm" .Chart.Name | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/* Pod selector labels: stable across upgrades (no chart version in them). */}}
{{- define "consul.selectorLabels" -}}
app: {{ include "consul.name" . }}
release: {{ .Release.Name }}
component: connect-injector
{{- end -}}

{{/* Labels of every object: the Consul chart's labels plus the app.kubernetes.io ones. */}}
{{- define "consul.labels" -}}
{{ include "consul.selectorLabels" . }}
chart: {{ include "consul.chart" . }}
heritage: {{ .Release.Service }}
app.kubernetes.io/name: {{ include "consul.name" . }}
app.kubernetes.io/instance: {{ .Release.Name }}
app.kubernetes.io/component: connect-injector
app.kubernetes.io/part-of: consul
app.kubernetes.io/version: {{ .Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ .Release.Service }}
helm.sh/chart: {{ printf "%s-%s" .Chart.Name .Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" }}
{{- end -}}

{{/* Object names (the Consul chart's names where it has the object). */}}
{{- define "consul.injector.name" -}}{{ include "consul.fullname" . }}-connect-injector{{- end -}}
{{- define "consul.injector.serviceAccount" -}}{{ include "consul.fullname" . }}-connect-injector-webhook-svc-account{{- end -}}
{{- define "consul.injector.service" -}}{{ include "consul.fullname" . }}-connect-injector-svc{{- end -}}
{{- define "consul.injector.certSecret" -}}
{{- if eq (include "consul.tls.mode" .) "secret" -}}
{{- required "connectInject.webhook.tls.secretName is required when connectInject.webhook.tls.mode is \"secret\"" .Values.connectInject.webhook.tls.secretName -}}
{{- else -}}
{{- include "consul.fullname" . }}-connect-inject-webhook-cert
{{- end -}}
{{- end -}}

{{/*
connectInject.enabled is tri-state: true, false, or "-" (inherit global.enabled). Renders "true" or "".
*/}}
{{- define "consul.injector.enabled" -}}
{{- $enabled := .Values.connectInject.enabled -}}
{{- if eq (toString $enabled) "-" -}}
{{- if .Values.global.enabled }}true{{ end -}}
{{- else if $enabled -}}
true
{{- end -}}
{{- end -}}

{{/*
Render a multi-line YAML string value (the Consul chart's nodeSelector/affinity/tolerations style,
passed through `tpl`). Arguments: root context, key name (for the error), value, "map" or "list".
*/}}
{{- define "consul.tplYaml" -}}
{{- $root := index . 0 -}}
{{- $key := index . 1 -}}
{{- $text := tpl (index . 2) $root -}}
{{- if eq (index . 3) "list" -}}
{{- $parsed := fromYamlArray $text -}}
{{- if and (eq (len $parsed) 1) (kindIs "string" (first $parsed)) -}}
{{- fail (printf "%s must be a YAML list: %s" $key (first $parsed)) -}}
{{- end -}}
{{- toYaml $parsed -}}
{{- else -}}
{{- $parsed := fromYaml $text -}}
{{- if hasKey $parsed "Error" -}}
{{- fail (printf "%s must be a YAML map: %s" $key (get $parsed "Error")) -}}
{{- end -}}
{{- toYaml $parsed -}}
{{- end -}}
{{- end -}}

{{/* Restricted pod security for every container of the chart. */}}
{{- define "consul.injector.containerSecurityContext" -}}
runAsNonRoot: true
allowPrivilegeEscalation: false
readOnlyRootFilesystem: true
capabilities:
  drop: ["ALL"]
seccompProfile:
  type: RuntimeDefault
{{- end -}}

{{/*
The cross-key checks of the Consul chart (same messages; the engine's config validation applies the
same rules, so `connect-inject check-values` and the webhook refuse the same values files).
*/}}
{{- define "consul.injector.validate" -}}
{{- $v := .Values -}}
{{- $clientEnabled := $v.client.enabled -}}
{{- if eq (toString $clientEnabled) "-" -}}{{- $clientEnabled = $v.global.enabled -}}{{- end -}}
{{- if not $clientEnabled -}}
{{- fail "clients must be enabled for connect injection" -}}
{{- end -}}
{{- if not $v.client.grpc -}}
{{- fail "client.grpc must be true for connect injection" -}}
{{- end -}}
{{- if and $v.connectInject.consulNamespaces.mirroringK8S (not $v.global.enableConsulNamespaces) -}}
{{- fail "global.enableConsulNamespaces must be true if mirroringK8S=true" -}}
{{- end -}}
{{- if and $v.global.adminPartitions.enabled (not $v.global.enableConsulNamespaces) -}}
{{- fail "global.enableConsulNamespaces must be true if global.adminPartitions.enabled=true" -}}
{{- end -}}
{{- with $v.connectInject.centralConfig -}}
{{- if eq (toString .enabled) "false" -}}
{{- fail "connectInject.centralConfig.enabled cannot be set to false; to disable, set enable_central_service_config to false in server.extraConfig and client.extraConfig" -}}
{{- end -}}
{{- if .defaultProtocol -}}
{{- fail "connectInject.centralConfig.defaultProtocol is no longer supported; instead you must migrate to CRDs (see www.consul.io/docs/k8s/crds/upgrade-to-crds)" -}}
{{- end -}}
{{- if and .proxyDefaults (ne (trim (toString .proxyDefaults)) "{}") -}}
{{- fail "connectInject.centralConfig.proxyDefaults is no longer supported; instead you must migrate to CRDs (see www.consul.io/docs/k8s/crds/upgrade-to-crds)" -}}
{{- end -}}
{{- end -}}
{{- if $v.connectInject.imageEnvoy -}}
{{- fail "connectInject.imageEnvoy must be specified in global.imageEnvoy" -}}
{{- end -}}
{{- if $v.global.lifecycleSidecarContainer -}}
{{- fail "global.lifecycleSidecarContainer has been renamed to global.consulSidecarContainer. Please set values using global.consulSidecarContainer." -}}
{{- end -}}
{{- if $v.global.bootstrapACLs -}}
{{- fail "global.bootstrapACLs was removed, use global.acls.manageSystemACLs instead" -}}
{{- end -}}
{{- include "consul.reservedNamesFailer" (list $v.connectInject.consulNamespaces.consulDestinationNamespace "connectInject.consulNamespaces.consulDestinationNamespace") -}}
{{- include "consul.reservedNamesFailer" (list $v.global.adminPartitions.name "global.adminPartitions.name") -}}
{{- if has "*" ($v.connectInject.k8sDenyNamespaces | default list) -}}
{{- fail "connectInject.k8sDenyNamespaces: \"*\" is not supported in the deny list; use k8sAllowNamespaces: [] to inject nothing" -}}
{{- end -}}
{{- if and $v.connectInject.sidecarProxy.nativeSidecar (semverCompare "<1.29.0-0" .Capabilities.KubeVersion.Version) -}}
{{- fail (printf "connectInject.sidecarProxy.nativeSidecar needs Kubernetes 1.29 or newer (native sidecar containers); this cluster is %s" .Capabilities.KubeVersion.Version) -}}
{{- end -}}
{{- end -}}

{{/*
The namespaceSelector of both webhooks: connectInject.namespaceSelector, plus kube-system,
kube-public and the injector's own namespace, always excluded, so a webhook that is down can never
block the cluster's system pods or its own restart.
*/}}
{{- define "consul.injector.namespaceSelector" -}}
{{- $selector := dict -}}
{{- with .Values.connectInject.namespaceSelector -}}
{{- $selector = include "consul.tplYaml" (list $ "connectInject.namespaceSelector" . "map") | fromYaml -}}
{{- end -}}
{{- $never := dict "key" "kubernetes.io/metadata.name" "operator" "NotIn" "values" (list "kube-system" "kube-public" .Release.Namespace | uniq) -}}
{{- $_ := set $selector "matchExpressions" (append ($selector.matchExpressions | default list) $never) -}}
{{- toYaml $selector -}}
{{- end -}}

{{- define "consul.reservedNamesFailer" -}}
{{- $name := index . 0 -}}
{{- $key := index . 1 -}}
{{- if has $name (list "system" "universal" "consul" "operator" "root") -}}
{{- fail (cat "The name" $name "set for key" $key "is reserved by Consul for future use.") -}}
{{- end -}}
{{- end -}}

{{/*
Webhook serving certificate. connectInject.webhook.tls.mode:
  chart        generated here (genCA + genSignedCert) for the Service's DNS names; an existing Secret
               of that name (previous install) is reused through `lookup`, so an upgrade keeps the
               key, the certificate and the caBundle in step;
  certManager  a cert-manager Certificate; cert-manager's cainjector fills in the caBundle;
  secret       an existing kubernetes.io/tls Secret (tls.secretName) plus its CA (tls.caBundle).
*/}}
{{- define "consul.tls.mode" -}}
{{- .Values.connectInject.webhook.tls.mode | default "chart" -}}
{{- end -}}

{{- define "consul.tls.dnsNames" -}}
{{- $svc := include "consul.injector.service" . -}}
{{- $ns := .Release.Namespace -}}
{{- toJson (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns)) -}}
{{- end -}}

{{/*
The chart-mode certificate as JSON {ca, crt, key} (PEM). Generated once per render and kept in the
root context, so the Secret, the webhook configuration's caBundle and the Deployment's checksum all
see the same certificate.
*/}}
{{- define "consul.tls.generated" -}}
{{- if not (hasKey . "_consulInjectorTLS") -}}
{{- $secretName := include "consul.injector.certSecret" . -}}
{{- $existing := lookup "v1" "Secret" .Release.Namespace $secretName -}}
{{- $data := dict -}}
{{- if $existing -}}{{- $data = $existing.data | default dict -}}{{- end -}}
{{- $tls := dict -}}
{{- if and (index $data "ca.crt") (index $data "tls.crt") (index $data "tls.key") -}}
{{- $_ := set $tls "ca" (index $data "ca.crt" | b64dec) -}}
{{- $_ := set $tls "crt" (index $data "tls.crt" | b64dec) -}}
{{- $_ := set $tls "key" (index $data "tls.key" | b64dec) -}}
{{- else -}}
{{- $days := int .Values.connectInject.webhook.tls.validityDays -}}
{{- $dnsNames := include "consul.tls.dnsNames" . | fromJsonArray -}}
{{- $ca := genCA (printf "%s-connect-injector-ca" (include "consul.fullname" .)) $days -}}
{{- $cert := genSignedCert (first $dnsNames) nil $dnsNames $days $ca -}}
{{- $_ := set $tls "ca" $ca.Cert -}}
{{- $_ := set $tls "crt" $cert.Cert -}}
{{- $_ := set $tls "key" $cert.Key -}}
{{- end -}}
{{- $_ := set . "_consulInjectorTLS" $tls -}}
{{- end -}}
{{- toJson (get . "_consulInjectorTLS") -}}
{{- end -}}

{{/* caBundle of the webhook configuration (base64), "" in certManager mode (cainjector sets it). */}}
{{- define "consul.tls.caBundle" -}}
{{- $mode := include "consul.tls.mode" . -}}
{{- if eq $mode "chart" -}}
{{- (include "consul.tls.generated" . | fromJson).ca | b64enc -}}
{{- else if eq $mode "secret" -}}
{{- required "connectInject.webhook.tls.caBundle is required when connectInject.webhook.tls.mode is \"secret\" (the base64-encoded PEM CA that signed the Secret's certificate)" .Values.connectInject.webhook.tls.caBundle -}}
{{- end -}}
{{- end -}}

{{- define "consul.certManager.certificate" -}}{{ include "consul.injector.name" . }}-webhook{{- end -}}
