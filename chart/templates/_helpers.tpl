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

{{/*
The Consul chart's release this chart sits beside (global.consulRelease, in this namespace; by
default this release, as when the injector was part of the Consul chart), and that release's
fullname: the prefix of the Consul objects the components use (its DNS Service, its CA and ACL token
Secrets, its auth method, its servers). The same rule as consul.fullname, for that release.
*/}}
{{- define "consul.consulRelease" -}}{{ .Values.global.consulRelease | default .Release.Name }}{{- end -}}
{{- define "consul.consulFullname" -}}
{{- if .Values.fullnameOverride -}}
{{- .Values.fullnameOverride | trunc 63 | trimSuffix "-" -}}
{{- else if .Values.global.name -}}
{{- .Values.global.name | trunc 63 | trimSuffix "-" -}}
{{- else -}}
{{- printf "%s-%s" (include "consul.consulRelease" .) (include "consul.name" .) | trunc 63 | trimSuffix "-" -}}
{{- end -}}
{{- end -}}

{{/*
A component's --log-level: its own key (connectInject.logLevel, controller.logLevel), else
global.logLevel, else info; `trace` (the Consul chart allows it) as debug, the finest our processes
have. Argument: (list $ <the component's own level>). The values layer derives the same
(generator/values/shared.py; tests/chart/test_log_level.py).
*/}}
{{- define "consul.logLevel" -}}
{{- $root := index . 0 -}}
{{- $level := index . 1 | default $root.Values.global.logLevel | default "info" -}}
{{- ternary "debug" $level (eq $level "trace") -}}
{{- end -}}

{{- define "consul.chart" -}}
{{- printf "%s-helm" .Chart.Name | replace "+" "_" | trunc 63 | trimSuffix "-" -}}
{{- end -}}

{{/*
Quoting. Every value that comes from values (and every name built from one) is written into YAML
through `quote` (a double-quoted YAML string: a newline, a quote or a ": " in it stays text), or
through toYaml/toJson, never bare: a values file cannot add keys, volumes or containers.
*/}}

{{/*
Pod selector labels, for one component: `include "consul.selectorLabels" (list $ "connect-injector")`.
The component is a parameter so that each Deployment's Service and PodDisruptionBudget select only
its own pods. Stable across upgrades (no chart version in them).
*/}}
{{- define "consul.selectorLabels" -}}
{{- $root := index . 0 -}}
app: {{ include "consul.name" $root | quote }}
release: {{ $root.Release.Name | quote }}
component: {{ index . 1 | quote }}
{{- end -}}

{{/* Labels of every object of one component (same arguments): the Consul chart's labels plus the
app.kubernetes.io ones. */}}
{{- define "consul.labels" -}}
{{- $root := index . 0 -}}
{{ include "consul.selectorLabels" . }}
chart: {{ include "consul.chart" $root | quote }}
heritage: {{ $root.Release.Service | quote }}
app.kubernetes.io/name: {{ include "consul.name" $root | quote }}
app.kubernetes.io/instance: {{ $root.Release.Name | quote }}
app.kubernetes.io/component: {{ index . 1 | quote }}
app.kubernetes.io/part-of: consul
app.kubernetes.io/version: {{ $root.Chart.AppVersion | quote }}
app.kubernetes.io/managed-by: {{ $root.Release.Service | quote }}
helm.sh/chart: {{ printf "%s-%s" $root.Chart.Name $root.Chart.Version | replace "+" "_" | trunc 63 | trimSuffix "-" | quote }}
{{- end -}}

{{/* Object names (the Consul chart's names where it has the object); quote them where used. */}}
{{- define "consul.injector.name" -}}{{ include "consul.fullname" . }}-connect-injector{{- end -}}
{{- define "consul.injector.serviceAccount" -}}{{ include "consul.fullname" . }}-connect-injector-webhook-svc-account{{- end -}}
{{- define "consul.injector.service" -}}{{ include "consul.fullname" . }}-connect-injector-svc{{- end -}}
{{- define "consul.injector.certSecret" -}}{{ include "consul.webhookTLS.secret" (list . "connect-injector") }}{{- end -}}

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
The namespaceSelector of both webhooks: connectInject.namespaceSelector, plus kube-system and
kube-public, always excluded, so a webhook that is down can never block the cluster's system pods.
The release namespace is not excluded (tutorials install Consul and their apps in `default`); the
webhook's own pods, and the Consul chart's, are left out by the objectSelector (label app).
*/}}
{{- define "consul.injector.namespaceSelector" -}}
{{- $selector := dict -}}
{{- with .Values.connectInject.namespaceSelector -}}
{{- $selector = include "consul.tplYaml" (list $ "connectInject.namespaceSelector" . "map") | fromYaml -}}
{{- end -}}
{{- $never := dict "key" "kubernetes.io/metadata.name" "operator" "NotIn" "values" (list "kube-system" "kube-public") -}}
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
Webhook serving certificates: one per webhook server, by component ("connect-injector": the
injector, connectInject.webhook.tls; "controller": the config-entry controller,
controller.webhook.tls). The generic helpers below take (list $ component); the injector's
consul.tls.* helpers call them with "connect-injector". Modes (<component tls>.mode):
  chart        generated here (genCA + genSignedCert) for the Service's DNS names. The Secret records
               when the certificate expires and which DNS names it holds, in two annotations
               (consul.hashicorp.com/cert-not-after, RFC 3339 UTC, and .../cert-dns-names, comma
               separated): Helm's template functions cannot read a certificate. An upgrade reuses
               the existing Secret (`lookup`), so the key, the certificate and the caBundle stay in
               step, only while it is complete, its cert-not-after is more than 30 days away and its
               cert-dns-names are the names the Service has now. Otherwise (also when the Secret
               has no such annotations: an older release made it) it makes a new CA and
               certificate, and the webhook configurations trust the previous CA as well until the
               next upgrade, so the replicas still serving the previous certificate during the
               rollout keep answering;
  certManager  a cert-manager Certificate; cert-manager's cainjector fills in the caBundle;
  secret       an existing kubernetes.io/tls Secret (tls.secretName) plus its CA (tls.caBundle).
*/}}

{{/* The component's tls values (JSON) and their values path (for messages). */}}
{{- define "consul.webhookTLS.values" -}}
{{- $root := index . 0 -}}
{{- if eq (index . 1) "controller" -}}
{{- toJson (($root.Values.controller.webhook | default dict).tls | default dict) -}}
{{- else -}}
{{- toJson ($root.Values.connectInject.webhook.tls | default dict) -}}
{{- end -}}
{{- end -}}
{{- define "consul.webhookTLS.key" -}}
{{- ternary "controller.webhook.tls" "connectInject.webhook.tls" (eq (index . 1) "controller") -}}
{{- end -}}

{{- define "consul.webhookTLS.mode" -}}
{{- (include "consul.webhookTLS.values" . | fromJson).mode | default "chart" -}}
{{- end -}}

{{/* The Secret the webhook server reads its certificate from. */}}
{{- define "consul.webhookTLS.secret" -}}
{{- $root := index . 0 -}}
{{- $key := include "consul.webhookTLS.key" . -}}
{{- if eq (include "consul.webhookTLS.mode" .) "secret" -}}
{{- required (printf "%s.secretName is required when %s.mode is \"secret\"" $key $key) (include "consul.webhookTLS.values" . | fromJson).secretName -}}
{{- else if eq (index . 1) "controller" -}}
{{- include "consul.fullname" $root }}-controller-webhook-cert
{{- else -}}
{{- include "consul.fullname" $root }}-connect-inject-webhook-cert
{{- end -}}
{{- end -}}

{{/* The Service in front of the webhook server (the certificate's DNS names). */}}
{{- define "consul.webhookTLS.service" -}}
{{- if eq (index . 1) "controller" -}}
{{- include "consul.controller.service" (index . 0) -}}
{{- else -}}
{{- include "consul.injector.service" (index . 0) -}}
{{- end -}}
{{- end -}}

{{/* Prefix of the cert-manager objects (Certificate "<prefix>-webhook", self-signed CA chain). */}}
{{- define "consul.webhookTLS.prefix" -}}
{{- if eq (index . 1) "controller" -}}
{{- include "consul.controller.name" (index . 0) -}}
{{- else -}}
{{- include "consul.injector.name" (index . 0) -}}
{{- end -}}
{{- end -}}

{{- define "consul.webhookTLS.dnsNames" -}}
{{- $svc := include "consul.webhookTLS.service" . -}}
{{- $ns := (index . 0).Release.Namespace -}}
{{- toJson (list $svc (printf "%s.%s" $svc $ns) (printf "%s.%s.svc" $svc $ns) (printf "%s.%s.svc.cluster.local" $svc $ns)) -}}
{{- end -}}

{{/* The Secret annotations that record the generated certificate's expiry and DNS names. */}}
{{- define "consul.tls.notAfterAnnotation" -}}consul.hashicorp.com/cert-not-after{{- end -}}
{{- define "consul.tls.dnsNamesAnnotation" -}}consul.hashicorp.com/cert-dns-names{{- end -}}

{{/*
The chart-mode certificate as JSON {ca, crt, key (PEM), notAfter, dnsNames (the annotations'
values), previousCA (PEM, only when this render replaces a certificate)}. Generated once per render
and component and kept in the root context, so the Secret, the webhook configurations' caBundle
and the Deployment's checksum all see the same certificate.
*/}}
{{- define "consul.webhookTLS.generated" -}}
{{- $root := index . 0 -}}
{{- $cacheKey := ternary "_consulControllerTLS" "_consulInjectorTLS" (eq (index . 1) "controller") -}}
{{- if not (hasKey $root $cacheKey) -}}
{{- $rfc3339 := "2006-01-02T15:04:05Z07:00" -}}
{{- $dnsNames := include "consul.webhookTLS.dnsNames" . | fromJsonArray -}}
{{- $existing := lookup "v1" "Secret" $root.Release.Namespace (include "consul.webhookTLS.secret" .) | default dict -}}
{{- $data := $existing.data | default dict -}}
{{- $annotations := ($existing.metadata | default dict).annotations | default dict -}}
{{- $notAfter := index $annotations (include "consul.tls.notAfterAnnotation" $root) | default "" | toString -}}
{{- $complete := and (index $data "ca.crt") (index $data "tls.crt") (index $data "tls.key") -}}
{{- /* An annotation that does not parse gives the zero time: expired. */ -}}
{{- $fresh := gt (toDate $rfc3339 $notAfter).Unix (add (now).Unix (mul 30 86400)) -}}
{{- $sameNames := eq (index $annotations (include "consul.tls.dnsNamesAnnotation" $root) | default "" | toString) (join "," $dnsNames) -}}
{{- $tls := dict "dnsNames" (join "," $dnsNames) -}}
{{- if and $complete $fresh $sameNames -}}
{{- $_ := set $tls "ca" (index $data "ca.crt" | b64dec) -}}
{{- $_ := set $tls "crt" (index $data "tls.crt" | b64dec) -}}
{{- $_ := set $tls "key" (index $data "tls.key" | b64dec) -}}
{{- $_ := set $tls "notAfter" $notAfter -}}
{{- else -}}
{{- $days := int ((include "consul.webhookTLS.values" . | fromJson).validityDays | default 3650) -}}
{{- /* Taken before the certificates are made, and cut to the second: never later than theirs. */ -}}
{{- $_ := set $tls "notAfter" (dateInZone $rfc3339 (add (now).Unix (mul $days 86400)) "UTC") -}}
{{- $ca := genCA (printf "%s-%s-ca" (include "consul.fullname" $root) (index . 1)) $days -}}
{{- $cert := genSignedCert (first $dnsNames) nil $dnsNames $days $ca -}}
{{- $_ := set $tls "ca" $ca.Cert -}}
{{- $_ := set $tls "crt" $cert.Cert -}}
{{- $_ := set $tls "key" $cert.Key -}}
{{- $previous := index $data "ca.crt" | default "" | b64dec -}}
{{- if hasPrefix "-----BEGIN CERTIFICATE-----" $previous -}}
{{- $_ := set $tls "previousCA" $previous -}}
{{- end -}}
{{- end -}}
{{- $_ := set $root $cacheKey $tls -}}
{{- end -}}
{{- toJson (get $root $cacheKey) -}}
{{- end -}}

{{/*
caBundle of the webhook configurations (base64): in chart mode the CA, plus the previous CA when
this render replaced the certificate; "" in certManager mode (cainjector sets it).
*/}}
{{- define "consul.webhookTLS.caBundle" -}}
{{- $mode := include "consul.webhookTLS.mode" . -}}
{{- $key := include "consul.webhookTLS.key" . -}}
{{- if eq $mode "chart" -}}
{{- $tls := include "consul.webhookTLS.generated" . | fromJson -}}
{{- printf "%s%s" $tls.ca ($tls.previousCA | default "") | b64enc -}}
{{- else if eq $mode "secret" -}}
{{- required (printf "%s.caBundle is required when %s.mode is \"secret\" (the base64-encoded PEM CA that signed the Secret's certificate)" $key $key) (include "consul.webhookTLS.values" . | fromJson).caBundle -}}
{{- end -}}
{{- end -}}

{{/* What the Deployment's CA checksum covers: the CA that signs the served certificate. */}}
{{- define "consul.webhookTLS.servingCA" -}}
{{- if eq (include "consul.webhookTLS.mode" .) "chart" -}}
{{- (include "consul.webhookTLS.generated" . | fromJson).ca -}}
{{- else -}}
{{- include "consul.webhookTLS.caBundle" . -}}
{{- end -}}
{{- end -}}

{{- define "consul.webhookTLS.certificate" -}}{{ include "consul.webhookTLS.prefix" . }}-webhook{{- end -}}

{{/* The injector's certificate (the helpers above for "connect-injector"). */}}
{{- define "consul.tls.mode" -}}{{ include "consul.webhookTLS.mode" (list . "connect-injector") }}{{- end -}}
{{- define "consul.tls.dnsNames" -}}{{ include "consul.webhookTLS.dnsNames" (list . "connect-injector") }}{{- end -}}
{{- define "consul.tls.generated" -}}{{ include "consul.webhookTLS.generated" (list . "connect-injector") }}{{- end -}}
{{- define "consul.tls.caBundle" -}}{{ include "consul.webhookTLS.caBundle" (list . "connect-injector") }}{{- end -}}
{{- define "consul.tls.servingCA" -}}{{ include "consul.webhookTLS.servingCA" (list . "connect-injector") }}{{- end -}}
{{- define "consul.certManager.certificate" -}}{{ include "consul.webhookTLS.certificate" (list . "connect-injector") }}{{- end -}}

{{/*
The config-entry controller (controller.enabled; a plain bool, no "-" as in the Consul chart):
its Deployment, Service, ServiceAccount, values ConfigMap and certificate Secret names.
*/}}
{{- define "consul.controller.name" -}}{{ include "consul.fullname" . }}-controller{{- end -}}
{{- define "consul.controller.configMap" -}}{{ include "consul.fullname" . }}-controller-config{{- end -}}
{{- define "consul.controller.service" -}}{{ include "consul.fullname" . }}-controller-webhook{{- end -}}
{{- define "consul.controller.certSecret" -}}{{ include "consul.webhookTLS.secret" (list . "controller") }}{{- end -}}
