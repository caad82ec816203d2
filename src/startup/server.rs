//! The listener side of the service: which `Host` names it answers and how connections are
//! served.

use crate::adapters::inbound::http::AllowedHosts;
use crate::config::Settings;

/// The `Host` names to answer. Bound beyond loopback with no name configured (refused in
/// `prod` by the settings), `dev` answers the loopback names only, as a port-forwarded
/// container is reached, and says so.
pub fn allowed_hosts(settings: &Settings) -> AllowedHosts {
    let listed = settings.allowed_hosts();
    let public_url = settings.public_url.as_deref();
    let loopback = settings.binds_loopback();
    let hosts = AllowedHosts::new(loopback, &settings.host, public_url, &listed);
    if loopback || hosts.has_names() {
        return hosts;
    }
    tracing::warn!(
        host = %settings.host,
        "bound beyond loopback without PUBLIC_URL or ALLOWED_HOSTS: answering only the \
         loopback names (localhost, 127.0.0.1, [::1]); set ALLOWED_HOSTS to the names clients use"
    );
    AllowedHosts::new(true, &settings.host, public_url, &listed)
}
