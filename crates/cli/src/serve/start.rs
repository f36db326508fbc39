//! Binding every endpoint first (so a port in use stops the start before anything runs),
//! then starting each service on its sockets.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use sockit_basic::{DaytimeTcp, DaytimeUdp, EchoTcp, EchoUdp, GreetService, TimeTcp, TimeUdp};
use sockit_chat::discovery::{self, Announcement};
use sockit_chat::irc::{IrcServer, IrcTlsServer, IrcWsServer};
use sockit_chat::udp_room;
use sockit_runtime::server::{self as runtime, TcpService, UdpService};
use sockit_wire::framed::{CommandTable, FramedConfig, FramedService};
use tokio::net::{TcpListener, UdpSocket};
use tokio::task::JoinSet;

use crate::serve::addr_file;
use crate::serve::plan::Endpoint;
use crate::serve::registry::{Proto, Service};
use crate::serve::ServeContext;

/// A bound socket.
#[derive(Debug)]
pub enum BoundSocket {
    /// A listening TCP socket.
    Tcp(TcpListener),
    /// A UDP socket.
    Udp(UdpSocket),
}

/// One bound endpoint.
#[derive(Debug)]
pub struct Bound {
    /// The service.
    pub service: Service,
    /// The transport.
    pub proto: Proto,
    /// The actual address (port 0 resolved).
    pub addr: SocketAddr,
    /// The socket.
    pub socket: BoundSocket,
}

/// What the table and the addr file show of a bound endpoint.
#[derive(Debug, Clone)]
pub struct BoundAddr {
    /// The service.
    pub service: Service,
    /// The transport.
    pub proto: Proto,
    /// The address.
    pub addr: SocketAddr,
}

/// Binds every endpoint; the first failure names the service and the flag to fix it.
pub fn bind_all(endpoints: &[Endpoint], backlog: u32) -> anyhow::Result<Vec<Bound>> {
    endpoints
        .iter()
        .map(|e| {
            let bound = match e.proto {
                Proto::Tcp | Proto::Http | Proto::Tls | Proto::Https | Proto::Ws | Proto::Wss => {
                    runtime::bind_tcp(e.addr, backlog).map(BoundSocket::Tcp)
                }
                Proto::Udp => runtime::bind_udp(e.addr).map(BoundSocket::Udp),
            };
            let socket = bound.map_err(|err| {
                let hint = if err.kind() == std::io::ErrorKind::AddrInUse {
                    format!(
                        "address in use; pick another with --port {}=N (or --port all=0 for free ports)",
                        e.service
                    )
                } else {
                    err.to_string()
                };
                anyhow::anyhow!("cannot bind {} ({} {}): {hint}", e.addr, e.service, e.proto)
            })?;
            let addr = match &socket {
                BoundSocket::Tcp(l) => l.local_addr(),
                BoundSocket::Udp(s) => s.local_addr(),
            }
            .with_context(|| format!("cannot read the address of {}", e.service))?;
            Ok(Bound {
                service: e.service,
                proto: e.proto,
                addr,
                socket,
            })
        })
        .collect()
}

/// The addresses of the bound endpoints.
pub fn addresses(bound: &[Bound]) -> Vec<BoundAddr> {
    bound
        .iter()
        .map(|b| BoundAddr {
            service: b.service,
            proto: b.proto,
            addr: b.addr,
        })
        .collect()
}

type ServiceTask = anyhow::Result<()>;

/// Starts each bound endpoint's service; every task ends after shutdown and drain.
pub fn start_all(bound: Vec<Bound>, ctx: &ServeContext) -> JoinSet<ServiceTask> {
    let mut tasks = JoinSet::new();
    // Discovery answers with the whole table, so it needs every bound address.
    let table = addr_file::to_table(&addresses(&bound));
    // The plain and the TLS IRC port serve one network.
    // Registered channels are kept under the state directory while chat is served.
    let chat_served = bound.iter().any(|b| b.service == Service::Chat);
    let state = chat_served.then(|| crate::serve::layout::Layout::of(&ctx.root).state);
    let irc = IrcServer::new(ctx.chat.irc_config(state.as_deref()));
    if let (true, Some(cluster)) = (chat_served, ctx.chat.cluster.clone()) {
        let node = irc.join_cluster(cluster, ctx.shutdown.clone());
        tasks.spawn(async move {
            let _ = node.await;
            Ok(())
        });
    }
    // NTS-KE tells clients the NTP port actually bound (it may be a free one).
    let ntp_port = bound
        .iter()
        .find(|b| b.service == Service::Ntp && b.proto == Proto::Udp)
        .map(|b| b.addr.port());
    for b in bound {
        match b.socket {
            BoundSocket::Tcp(listener) if b.proto == Proto::Http => {
                let token = ctx.shutdown.clone();
                let lib = crate::serve::reader::library(ctx);
                let limits = ctx.limits;
                tasks.spawn(async move {
                    let served = sockit_reader::http::serve_http(listener, lib, limits, token);
                    Ok(served.await?)
                });
            }
            BoundSocket::Tcp(listener) if b.proto == Proto::Https => {
                let token = ctx.shutdown.clone();
                let lib = crate::serve::reader::library(ctx);
                let acceptor = tls_acceptor(ctx);
                let limits = ctx.limits;
                tasks.spawn(async move {
                    let served =
                        sockit_reader::http::serve_tls(listener, acceptor, limits, lib, token);
                    Ok(served.await?)
                });
            }
            // UDP services that are not request → one reply run their own loops.
            BoundSocket::Udp(socket) if b.service == Service::UdpChat => {
                let (room, token) = (ctx.chat.room, ctx.shutdown.clone());
                tasks.spawn(async move { Ok(udp_room::serve_room(socket, room, token).await?) });
            }
            BoundSocket::Udp(socket) if b.service == Service::Discovery => {
                let me = Announcement::new(ctx.chat.irc.name.clone(), table.clone());
                let token = ctx.shutdown.clone();
                let rate = ctx.udp_rate;
                tasks.spawn(async move {
                    Ok(discovery::serve_discovery_with(socket, me, rate, token).await?)
                });
            }
            BoundSocket::Tcp(listener) => {
                let service = tcp_service(b.service, b.proto, ctx, &irc, ntp_port);
                let (limits, token) = (ctx.limits, ctx.shutdown.clone());
                tasks.spawn(async move {
                    Ok(runtime::serve_tcp(listener, service, limits, token).await?)
                });
            }
            BoundSocket::Udp(socket) if b.service == Service::Tftp => {
                let (config, token) = (ctx.tftp.clone(), ctx.shutdown.clone());
                tasks.spawn(async move { Ok(sockit_tftp::serve(socket, config, token).await?) });
            }
            // NTP answers on a thread of its own: stamped, answered and sent by one
            // thread, with no wake-up crossing threads.
            BoundSocket::Udp(socket) if b.service == Service::Ntp => {
                let service = udp_service(b.service, ctx);
                let (rate, token) = (ctx.udp_rate, ctx.shutdown.clone());
                tasks.spawn(async move {
                    let socket = socket.into_std()?;
                    let served = tokio::task::spawn_blocking(move || {
                        sockit_runtime::udp::serve_udp_blocking(socket, service, rate, token)
                    });
                    Ok(served.await??)
                });
            }
            BoundSocket::Udp(socket) => {
                let service = udp_service(b.service, ctx);
                let (rate, token) = (ctx.udp_rate, ctx.shutdown.clone());
                tasks.spawn(async move {
                    Ok(sockit_runtime::udp::serve_udp_with(socket, service, rate, token).await?)
                });
            }
        }
    }
    tasks
}

/// The TLS acceptor; TLS endpoints are only planned when the server has one.
fn tls_acceptor(ctx: &ServeContext) -> tokio_rustls::TlsAcceptor {
    match &ctx.tls {
        Some((acceptor, _)) => acceptor.clone(),
        None => unreachable!("TLS endpoints are planned only with --tls"),
    }
}

/// The IRC TLS port's acceptor (asks for optional client certificates: SASL EXTERNAL).
fn irc_tls_acceptor(ctx: &ServeContext) -> tokio_rustls::TlsAcceptor {
    ctx.irc_tls.clone().unwrap_or_else(|| tls_acceptor(ctx))
}

fn tcp_service(
    service: Service,
    proto: Proto,
    ctx: &ServeContext,
    irc: &IrcServer,
    ntp_port: Option<u16>,
) -> Arc<dyn TcpService> {
    match service {
        Service::Ntp => {
            let Some(nts) = &ctx.nts else {
                unreachable!("NTS-KE is planned only with --tls")
            };
            // Without a UDP endpoint here (`--only` cannot split them), clients are sent
            // to the default port.
            let port = ntp_port.unwrap_or(sockit_ntp::NTP_PORT);
            match sockit_ntp::nts::NtsKeService::new(
                nts.acceptor.clone(),
                nts.server.clone(),
                port,
                None,
            ) {
                Ok(ke) => Arc::new(ke),
                Err(e) => unreachable!("no server name is given, so none is invalid: {e}"),
            }
        }
        Service::Chat if proto == Proto::Tls => {
            Arc::new(IrcTlsServer::new(irc.clone(), irc_tls_acceptor(ctx)))
        }
        Service::Chat if proto == Proto::Ws => {
            Arc::new(IrcWsServer::new(irc.clone(), ctx.chat.ws_origins.clone()))
        }
        Service::Chat if proto == Proto::Wss => Arc::new(IrcWsServer::with_tls(
            irc.clone(),
            ctx.chat.ws_origins.clone(),
            tls_acceptor(ctx),
        )),
        Service::Chat => Arc::new(irc.clone()),
        Service::Greet => Arc::new(GreetService),
        Service::Echo => Arc::new(EchoTcp),
        Service::Daytime => Arc::new(DaytimeTcp),
        Service::Time => Arc::new(TimeTcp),
        Service::Framed => Arc::new(FramedService::new(
            framed_commands(ctx),
            FramedConfig {
                key: ctx.key.clone(),
                tls: ctx.tls.as_ref().map(|(acceptor, _)| acceptor.clone()),
                ..FramedConfig::default()
            },
        )),
        Service::Reader => {
            let lib = crate::serve::reader::library(ctx);
            Arc::new(if ctx.classic_public {
                sockit_reader::classic::ClassicService::public(lib)
            } else {
                sockit_reader::classic::ClassicService::new(lib)
            })
        }
        other => unreachable!("registry has no plain tcp endpoint for {other}"),
    }
}

fn udp_service(service: Service, ctx: &ServeContext) -> Arc<dyn UdpService> {
    match service {
        Service::Ntp => Arc::new(crate::serve::ntp::ntp_server(
            ctx.ntp.clone(),
            ctx.nts.as_ref(),
        )),
        Service::Echo => Arc::new(EchoUdp),
        Service::Daytime => Arc::new(DaytimeUdp),
        Service::Time => Arc::new(TimeUdp),
        other => unreachable!("registry has no request/response udp endpoint for {other}"),
    }
}

/// The framed commands beyond the built-ins (files and exec register here).
fn framed_commands(ctx: &ServeContext) -> CommandTable {
    let mut table = CommandTable::new();
    sockit_files::cmd::register(&mut table, ctx.files.clone());
    sockit_exec::register(&mut table, ctx.exec.clone());
    table
}
