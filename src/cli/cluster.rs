//! `esker cluster info`: the cluster id, the controller, the brokers (the endpoints of the
//! listener this client came through), and the features and APIs the broker announces.

use serde::Serialize;

use super::output::{or_dash, print_json, Table};
use super::CliResult;
use crate::client::settings::SecurityProtocol;
use crate::client::{Client, Target};

#[derive(Serialize)]
struct Broker {
    id: i32,
    host: String,
    port: u16,
    rack: Option<String>,
}

#[derive(Serialize)]
struct Feature {
    name: String,
    min_version: i16,
    max_version: i16,
    finalized_level: Option<i16>,
}

#[derive(Serialize)]
struct ClusterInfo {
    cluster_id: Option<String>,
    controller_id: i32,
    listener: &'static str,
    brokers: Vec<Broker>,
    features: Vec<Feature>,
    api_keys: usize,
}

/// Prints the cluster's description.
pub async fn info(client: &mut Client, json: bool) -> CliResult<()> {
    client.metadata(Some(&[])).await?;
    let listener = match client.settings().security {
        SecurityProtocol::Plaintext => "PLAINTEXT",
        SecurityProtocol::Ssl => "SSL",
        SecurityProtocol::SaslPlaintext => "SASL_PLAINTEXT",
        SecurityProtocol::SaslSsl => "SASL_SSL",
    };
    let brokers: Vec<Broker> = client
        .brokers
        .iter()
        .map(|(id, addr)| {
            let (host, port) = addr.rsplit_once(':').unwrap_or((addr.as_str(), "0"));
            Broker {
                id: *id,
                host: host.to_string(),
                port: port.parse().unwrap_or(0),
                rack: client.racks.get(id).cloned(),
            }
        })
        .collect();
    let (cluster_id, controller_id) = (client.cluster_id.clone(), client.controller_id);
    let av = client.connection(Target::Any).await?.api_versions.clone();
    let mut features: Vec<Feature> = av
        .supported_features
        .iter()
        .map(|f| Feature {
            name: f.name.to_string(),
            min_version: f.min_version,
            max_version: f.max_version,
            finalized_level: av
                .finalized_features
                .iter()
                .find(|x| x.name == f.name)
                .map(|x| x.max_version_level),
        })
        .collect();
    features.sort_by(|a, b| a.name.cmp(&b.name));
    let out = ClusterInfo {
        cluster_id,
        controller_id,
        listener,
        brokers,
        features,
        api_keys: av.api_keys.len(),
    };
    if json {
        return print_json(&out);
    }
    println!("Cluster ID:  {}", or_dash(out.cluster_id.clone()));
    println!("Controller:  {}", out.controller_id);
    println!("Listener:    {} (this connection)", out.listener);
    println!("API keys:    {}", out.api_keys);
    println!();
    let mut table = Table::new(&["BROKER", "HOST", "PORT", "RACK"]);
    for b in &out.brokers {
        table.row(vec![
            b.id.to_string(),
            b.host.clone(),
            b.port.to_string(),
            or_dash(b.rack.clone()),
        ]);
    }
    table.print();
    if !out.features.is_empty() {
        println!();
        let mut table = Table::new(&["FEATURE", "SUPPORTED", "FINALIZED"]);
        for f in &out.features {
            table.row(vec![
                f.name.clone(),
                format!("{}-{}", f.min_version, f.max_version),
                or_dash(f.finalized_level),
            ]);
        }
        table.print();
    }
    Ok(())
}
