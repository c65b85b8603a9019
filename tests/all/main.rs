//! The one integration test binary (linking is paid once): end-to-end tests that drive the
//! real kubectl binary and real clients against `flotilla up`.

mod clients;
mod console;
mod density;
mod guest_sdk;
mod disruption;
mod endpoints;
mod harness;
mod ingress;
mod kubectl_basics;
mod kube_client;
mod store;
mod up_down;
mod kubectl_apply;
mod kubectl_delete;
mod kubectl_edit;
mod kubectl_misc;
mod kubectl_versions;
mod netpol;
mod newcomer;
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
mod quota;
mod samples;
mod secrets;
mod services;
mod workloads;
mod workloads_batch;
