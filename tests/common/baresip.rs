//! baresip (a real softphone) as a headless test caller over SIP/TLS: no
//! sound card, a WAV as its microphone, `sndfile` keeping what it decoded.

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::Duration;

use super::{free_port, run_with_timeout};

/// One call: baresip in `dir` (created), trusting the CA file `ca`, with
/// `mic` as its microphone, dials `uri` over TLS with `account_params` on its
/// account (`;mediaenc=srtp-mand`…) and quits after `quit_after` seconds.
/// Returns whether the call came up, its output (stdout, then stderr) and the
/// audio it decoded (empty when it kept none).
pub fn call(
    dir: &Path,
    ca: &Path,
    mic: &Path,
    uri: &str,
    account_params: &str,
    quit_after: u32,
) -> (bool, String, Vec<i16>) {
    let snd = dir.join("snd");
    std::fs::create_dir_all(&snd).unwrap();
    // `srtp` before `account`: the account's `mediaenc` names what it registers.
    let modules = ["g711", "aufile", "aubridge", "sndfile", "srtp", "account"];
    let mut config = format!(
        "poll_method epoll\nsip_listen 127.0.0.1:{port}\nsip_cafile {ca}\n\
         audio_player aubridge,nowhere\naudio_alert aubridge,nowhere\n\
         audio_source aufile,{mic}\nmodule_path /usr/lib/baresip/modules\n\
         module_app menu.so\nsnd_path {snd}\n",
        port = free_port(),
        ca = ca.display(),
        mic = mic.display(),
        snd = snd.display(),
    );
    for m in modules {
        config.push_str(&format!("module {m}.so\n"));
    }
    std::fs::write(dir.join("config"), config).unwrap();
    std::fs::write(
        dir.join("accounts"),
        format!("<sip:tester@127.0.0.1;transport=tls>;regint=0{account_params}\n"),
    )
    .unwrap();
    let mut cmd = Command::new("baresip");
    cmd.arg("-f")
        .arg(dir)
        .args(["-t", &quit_after.to_string(), "-e"])
        .arg(format!("/dial {uri}"))
        .stdin(Stdio::null());
    let (_, out, err) = run_with_timeout(&mut cmd, Duration::from_secs(u64::from(quit_after) + 20));
    let up = out.contains("Call established");
    let pcm = std::fs::read_dir(&snd)
        .unwrap()
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().ends_with("-dec.wav"))
        .map(|dec| {
            hound::WavReader::open(&dec)
                .unwrap()
                .into_samples::<i16>()
                .map(Result::unwrap)
                .collect()
        })
        .unwrap_or_default();
    (up, format!("{out}\n{err}"), pcm)
}
