//! The VLAN devices of the daemon's namespace, for the XDP programs: a
//! FIB lookup towards a peer or a LAN host may name a VLAN device, which
//! takes no XDP frames; the programs then tag the frame themselves and
//! send it out of the lower device (`PPTP_VLANS`, [`VlanLink`]).

use futures::TryStreamExt as _;
use pptp_common::maps::VlanLink;
use rtnetlink::{
    Handle,
    packet_route::link::{InfoData, InfoKind, InfoVlan, LinkAttribute, LinkInfo, LinkMessage},
};

/// Every VLAN device of the namespace with what the programs need: its
/// interface index, and the lower device, TPID and VLAN ID.
pub async fn links(handle: &Handle) -> Result<Vec<(u32, VlanLink)>, rtnetlink::Error> {
    let mut all = handle.link().get().execute();
    let mut out = Vec::new();
    while let Some(msg) = all.try_next().await? {
        if let Some(link) = vlan_of(&msg) {
            out.push((msg.header.index, link));
        }
    }
    Ok(out)
}

/// The VLAN of a link message, if it describes a VLAN device.
fn vlan_of(msg: &LinkMessage) -> Option<VlanLink> {
    let mut parent = None;
    let mut vlan = None;
    for attr in &msg.attributes {
        match attr {
            LinkAttribute::Link(index) => parent = Some(*index),
            LinkAttribute::LinkInfo(infos) => {
                let is_vlan = infos
                    .iter()
                    .any(|i| matches!(i, LinkInfo::Kind(InfoKind::Vlan)));
                let data = infos.iter().find_map(|i| match i {
                    LinkInfo::Data(InfoData::Vlan(data)) => Some(data),
                    _ => None,
                });
                if let (true, Some(data)) = (is_vlan, data) {
                    let id = data.iter().find_map(|d| match d {
                        InfoVlan::Id(id) => Some(*id),
                        _ => None,
                    });
                    // The kernel's default when the attribute is missing.
                    let tpid = data
                        .iter()
                        .find_map(|d| match d {
                            InfoVlan::Protocol(p) => Some(u16::from(*p)),
                            _ => None,
                        })
                        .unwrap_or(pptp_common::consts::ETH_P_8021Q);
                    vlan = id.map(|id| (tpid, id));
                }
            }
            _ => {}
        }
    }
    let (tpid, id) = vlan?;
    Some(VlanLink {
        parent_ifindex: parent?,
        tpid: tpid.to_be_bytes(),
        tci: (id & 0x0FFF).to_be_bytes(),
    })
}
