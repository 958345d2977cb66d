//! cloud-init provisioning of VMs: what `vm.create` stores about a VM's seed, what `vm.get`
//! shows of it, the new `instance-id` of a wipe, and the seed built at each start.
//!
//! A VM gets a seed when its image says it runs cloud-init, or when the creator asks for
//! anything a seed carries (keys, user, password, user-data), unless cloud-init is turned off
//! for it. The password is hashed (SHA-512 crypt, what the guest's `passwd` field takes) before
//! it is stored; the clear text is never kept or logged.

use std::path::{Path, PathBuf};

use vm_proto::types::{user_data_kind, validate_guest_user, CloudInitInfo, CloudInitRequest};

use super::{Error, Manager};
use crate::auth::Subject;
use crate::seed::{self, Seed};
use crate::store::{CloudInitRow, ImageRow, VmRow};

/// The guest account when neither the creator nor their account name gives a valid one.
const FALLBACK_USER: &str = "lab";

impl Manager {
    /// The seed settings of a new VM `name` made from `image` by `subject`, or `None` for no
    /// seed. Everything is checked here, before any file exists.
    pub(super) async fn plan_cloud_init(
        &self,
        subject: &Subject,
        name: &str,
        image: &ImageRow,
        req: Option<CloudInitRequest>,
    ) -> Result<Option<CloudInitRow>, Error> {
        let req = req.unwrap_or_default();
        req.validate().map_err(Error::Invalid)?;
        if let Some(data) = &req.user_data {
            seed::check_user_data(data).map_err(Error::Invalid)?;
        }
        if !req.enabled || !(image.cloud_init || req.asks_for_seed()) {
            return Ok(None);
        }
        let password_hash = match req.password {
            Some(password) => Some(hash_password(password).await?),
            None => None,
        };
        let user = req.user.unwrap_or_else(|| default_user(&subject.name));
        Ok(Some(CloudInitRow {
            user,
            ssh_keys: req.ssh_keys,
            password_hash,
            user_data: req.user_data,
            instance_id: new_instance_id(name)?,
        }))
    }

    /// Builds the seed of `row` (if it has one) in its run directory.
    pub(super) async fn seed_for(
        &self,
        row: &VmRow,
        run_dir: &Path,
    ) -> Result<Option<PathBuf>, Error> {
        let Some(ci) = &row.cloud_init else {
            return Ok(None);
        };
        let seed = Seed {
            hostname: row.name.clone(),
            instance_id: ci.instance_id.clone(),
            user: ci.user.clone(),
            ssh_keys: ci.ssh_keys.clone(),
            password_hash: ci.password_hash.clone(),
            user_data: ci.user_data.clone(),
        };
        seed::build(&seed, run_dir)
            .await
            .map(Some)
            .map_err(|e| Error::StartFailed {
                name: row.name.clone(),
                reason: e.to_string(),
            })
    }
}

impl Manager {
    /// Gives `row`'s seed (if any) a new `instance-id`, so that the guest provisions again.
    pub(super) async fn renew_instance_id(&self, row: &VmRow) -> Result<(), Error> {
        if row.cloud_init.is_none() {
            return Ok(());
        }
        let (id, instance_id) = (row.id, new_instance_id(&row.name)?);
        self.db(move |s| {
            Ok(s.with_tx_retry(|tx| crate::store::set_instance_id(tx, id, &instance_id))?)
        })
        .await
    }
}

/// What `vm.get` shows of a VM's seed.
pub(super) fn cloud_init_info(row: &CloudInitRow) -> CloudInitInfo {
    CloudInitInfo {
        user: row.user.clone(),
        ssh_keys: row.ssh_keys.clone(),
        password: row.password_hash.is_some(),
        user_data: row
            .user_data
            .as_deref()
            .and_then(|d| user_data_kind(d).ok())
            .map(str::to_string),
        instance_id: row.instance_id.clone(),
    }
}

/// A fresh `instance-id` for VM `name`: `iid-NAME-` and 8 random hex digits.
pub(super) fn new_instance_id(name: &str) -> Result<String, Error> {
    let mut bytes = [0u8; 4];
    getrandom::fill(&mut bytes)
        .map_err(|e| Error::Invalid(format!("no randomness for an instance-id: {e}")))?;
    let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
    Ok(format!("iid-{name}-{hex}"))
}

/// The guest account named after the owner's account when that is a valid guest user name.
pub(super) fn default_user(account: &str) -> String {
    match validate_guest_user(account) {
        Ok(()) => account.to_string(),
        Err(_) => FALLBACK_USER.to_string(),
    }
}

/// SHA-512 crypt of `password` (off the async workers: it is deliberately slow).
async fn hash_password(password: String) -> Result<String, Error> {
    tokio::task::spawn_blocking(move || {
        let params = sha_crypt::Sha512Params::new(sha_crypt::ROUNDS_DEFAULT)
            .map_err(|e| format!("{e:?}"))?;
        sha_crypt::sha512_simple(&password, &params).map_err(|e| format!("{e:?}"))
    })
    .await?
    .map_err(|e| Error::Invalid(format!("cannot hash the guest password: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn default_user_is_the_account_when_valid() {
        assert_eq!(default_user("alice"), "alice");
        assert_eq!(default_user("root"), "lab");
        assert_eq!(default_user("a.b"), "lab");
    }

    #[test]
    fn instance_ids_are_fresh() {
        let a = new_instance_id("web1").expect("id");
        let b = new_instance_id("web1").expect("id");
        assert!(a.starts_with("iid-web1-") && a.len() == "iid-web1-".len() + 8);
        assert_ne!(a, b);
    }

    #[tokio::test]
    async fn passwords_become_sha512_crypt_hashes() {
        let hash = hash_password("hunter2".into()).await.expect("hash");
        assert!(hash.starts_with("$6$") && !hash.contains("hunter2"));
        assert!(sha_crypt::sha512_check("hunter2", &hash).is_ok());
    }
}
