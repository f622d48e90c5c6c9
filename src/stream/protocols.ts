// The Kubernetes streaming subprotocols crib speaks, preferred first.

/** Remote command (exec/attach) over SPDY/3.1: v4 reports a metav1.Status, v3 adds resize. */
export const SPDY_COMMAND_PROTOCOLS = ["v4.channel.k8s.io", "v3.channel.k8s.io", "v2.channel.k8s.io"];
/** Remote command over WebSocket; v5 adds the close-stdin signal. */
export const WS_COMMAND_PROTOCOLS = ["v5.channel.k8s.io", "v4.channel.k8s.io"];
/** Port-forward over SPDY/3.1. */
export const PORT_FORWARD_PROTOCOL = "portforward.k8s.io";
