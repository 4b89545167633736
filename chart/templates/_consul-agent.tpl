{{/*
Talking to Consul from the chart's pods (the webhook and the endpoints controller), as the Consul
chart wires its own components: the client agent on the pod's node (HOST_IP) over http/8500, or
https/8501 with global.tls.enabled; its CA from the Consul chart's CA Secret, or fetched from the
servers at start (auto-encrypt); the ACL token from a Secret.
*/}}

{{/* True when the pods talk TLS to Consul. */}}
{{- define "consul.agent.tls" -}}{{ if .Values.global.tls.enabled }}true{{ end }}{{- end -}}

{{/* True with TLS and auto-encrypt: the agents' CA comes from the servers (an init container). */}}
{{- define "consul.agent.autoEncrypt" -}}
{{- if and .Values.global.tls.enabled .Values.global.tls.enableAutoEncrypt }}true{{ end -}}
{{- end -}}

{{/* True when the Consul chart's CA Secret is mounted (not with external servers on system roots). */}}
{{- define "consul.agent.caSecret" -}}
{{- $ext := .Values.externalServers | default dict -}}
{{- if and .Values.global.tls.enabled (not (and $ext.enabled $ext.useSystemRoots)) }}true{{ end -}}
{{- end -}}

{{/*
The init container that fetches the client agents' CA from the servers (auto-encrypt). No shell:
each flag, values included, is one argument of the command.
*/}}
{{- define "consul.agent.autoEncryptInitContainer" -}}
{{- $ext := .Values.externalServers | default dict -}}
- name: get-auto-encrypt-client-ca
  image: {{ .Values.global.imageK8S | quote }}
  command:
    - consul-k8s-control-plane
    - get-consul-client-ca
    - -output-file=/consul/tls/client/ca/tls.crt
    {{- if $ext.enabled }}
    {{- if not $ext.hosts }}{{ fail "externalServers.hosts must be set if externalServers.enabled is true" }}{{ end }}
    - {{ printf "-server-addr=%v" (first $ext.hosts) | quote }}
    - {{ printf "-server-port=%v" ($ext.httpsPort | default 8501) | quote }}
    {{- with $ext.tlsServerName }}
    - {{ printf "-tls-server-name=%v" . | quote }}
    {{- end }}
    {{- if not $ext.useSystemRoots }}
    - -ca-file=/consul/tls/ca/tls.crt
    {{- end }}
    {{- else }}
    - {{ printf "-server-addr=%s-server" (include "consul.consulFullname" .) | quote }}
    - -server-port=8501
    - -ca-file=/consul/tls/ca/tls.crt
    {{- end }}
  resources:
    requests:
      memory: "50Mi"
      cpu: "50m"
    limits:
      memory: "50Mi"
      cpu: "50m"
  securityContext:
    {{- include "consul.injector.containerSecurityContext" . | nindent 4 }}
  volumeMounts:
    {{- if include "consul.agent.caSecret" . }}
    - name: consul-ca-cert
      mountPath: /consul/tls/ca
      readOnly: true
    {{- end }}
    - name: consul-auto-encrypt-ca-cert
      mountPath: /consul/tls/client/ca
{{- end -}}

{{/* The container's mount of the agents' CA (with TLS), at the path CONSUL_CACERT names. */}}
{{- define "consul.agent.caMount" -}}
{{- if include "consul.agent.tls" . -}}
- name: {{ ternary "consul-auto-encrypt-ca-cert" "consul-ca-cert" (not (empty (include "consul.agent.autoEncrypt" .))) }}
  mountPath: /consul/tls/ca
  readOnly: true
{{- end -}}
{{- end -}}

{{/* The pod volumes behind consul.agent.caMount and the auto-encrypt init container. */}}
{{- define "consul.agent.caVolumes" -}}
{{- if include "consul.agent.caSecret" . }}
- name: consul-ca-cert
  secret:
    secretName: {{ .Values.global.tls.caCert.secretName | default (printf "%s-ca-cert" (include "consul.consulFullname" .)) | quote }}
    items:
      - key: {{ .Values.global.tls.caCert.secretKey | default "tls.crt" | quote }}
        path: tls.crt
{{- end }}
{{- if include "consul.agent.autoEncrypt" . }}
- name: consul-auto-encrypt-ca-cert
  emptyDir:
    medium: Memory
{{- end }}
{{- end -}}

{{/*
Env of a container that talks to the client agent on its node. Argument: the root context (the
injector's components), or (list $ "controller"). The ACL token, as the reference's injector: the
component's token Secret when both its keys are set (connectInject.aclInjectToken;
controller.aclToken), else (global.acls.manageSystemACLs) the Secret the Consul chart's ACL setup
writes ("<fullname>-connect-inject-acl-token"; "<fullname>-controller-acl-token"), key "token". One
entry, never two (the reference's controller template can add both).
*/}}
{{- define "consul.agent.env" -}}
{{- $root := . -}}
{{- $component := "connect-injector" -}}
{{- if kindIs "slice" . -}}
{{- $root = index . 0 -}}
{{- $component = index . 1 -}}
{{- end -}}
{{- with $root -}}
- name: HOST_IP
  valueFrom:
    fieldRef:
      fieldPath: status.hostIP
- name: CONSUL_HTTP_ADDR
  value: {{ ternary "https://$(HOST_IP):8501" "http://$(HOST_IP):8500" (not (empty (include "consul.agent.tls" .))) | quote }}
{{- if include "consul.agent.tls" . }}
- name: CONSUL_CACERT
  value: /consul/tls/ca/tls.crt
{{- end }}
{{- $token := ternary .Values.controller.aclToken .Values.connectInject.aclInjectToken (eq $component "controller") | default dict }}
{{- $managed := ternary "controller-acl-token" "connect-inject-acl-token" (eq $component "controller") }}
{{- if and $token.secretName $token.secretKey }}
- name: CONSUL_HTTP_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ $token.secretName | quote }}
      key: {{ $token.secretKey | quote }}
{{- else if .Values.global.acls.manageSystemACLs }}
- name: CONSUL_HTTP_TOKEN
  valueFrom:
    secretKeyRef:
      name: {{ printf "%s-%s" (include "consul.consulFullname" .) $managed | quote }}
      key: "token"
{{- end }}
{{- end }}
{{- end -}}

{{/* The endpoints controller's Deployment, ServiceAccount and RBAC objects. */}}
{{- define "consul.endpointsController.name" -}}{{ include "consul.fullname" . }}-endpoints-controller{{- end -}}
