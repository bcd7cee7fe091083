export { type CertificateInfo, generateSelfSignedPair, verifyCertificatePair } from "./certificates.js";
export { NginxProxy, type NginxProxyOptions } from "./nginx-proxy.js";
export { NginxProxyPlugin, nginxProxy } from "./plugin.js";
export { DEFAULT_PROXY_SETTINGS, type ProxySettings, parseProxySettings } from "./settings.js";
