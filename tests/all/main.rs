//! The one integration test binary (linking is paid once): end-to-end tests that drive the
//! real kubectl binary and real clients against `flotilla up`.

mod density;
mod endpoints;
mod ha;
mod harness;
mod ingress;
mod kubectl_basics;
mod kube_client;
mod store;
mod kubectl_apply;
mod kubectl_delete;
mod kubectl_edit;
mod kubectl_misc;
mod netpol;
mod outside;
mod node_pods;
mod node_limits;
mod node_images;
mod pod_cidr;
mod pod_network;
mod pod_network_xnode;
mod pod_tcp;
mod port_forward;
mod probes;
mod samples;
mod secrets;
mod services;
mod workloads;
mod workloads_batch;
