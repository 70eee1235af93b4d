"""Render asterisk-conf/ from the engine's settings and install it into an Asterisk.

Templates use @NAME@ placeholders (Asterisk itself owns ${...}).
"""

from __future__ import annotations

import contextlib
import os
import re
import stat
from pathlib import Path

from config.settings import Settings
from cti import dialplan as dp
from ivr import prompts, speech

CONF_DIR = Path(__file__).resolve().parent.parent / "asterisk-conf"
PLACEHOLDER = re.compile(r"@([A-Z_]+)@")
STATIC = ("logger.conf", "modules.conf")
# A 三方通话's conference (confbridge.conf): the caller, the agent, a department and a second
# agent, with room for one more party being rung while another is still there.
CONF_MAX_MEMBERS = 6
# Music on hold: musiconhold.conf's [default] plays the files in <astdatadir>/moh, beside
# Asterisk's sounds folder (Debian: /usr/share/asterisk/moh, from the package below).
MUSIC_DIR = "moh"
MUSIC_CLASS = "default"
MUSIC_PACKAGE = "asterisk-moh-opsound-wav"


def fill(template: str, values: dict[str, str]) -> str:
    def sub(m: re.Match[str]) -> str:
        key = m.group(1)
        if key not in values:
            raise KeyError(f"template placeholder @{key}@ has no value")
        return values[key]

    return PLACEHOLDER.sub(sub, template)


def _agents_block(settings: Settings) -> str:
    sip = settings.engine.sip
    # Asterisk pings each phone (qualify) so that a dead one is found in seconds, not when its
    # registration runs out; registrations are capped so that a phone gone without a word
    # (no OPTIONS reply, no REGISTER) leaves within max_expiry even with qualify off.
    aor_extra = (f"qualify_frequency = {sip.qualify}\nqualify_timeout = {sip.qualify_timeout():g}\n"
                 f"maximum_expiration = {sip.max_expiry}\ndefault_expiration = {sip.max_expiry}\n")
    blocks = []
    for agent in settings.agents:
        name = f"agent{agent.id}"
        blocks.append(
            f"[{name}]\ntype = endpoint\ncontext = hotline-agents\ndisallow = all\nallow = alaw,ulaw\n"
            f"direct_media = no\nrtp_symmetric = yes\nauth = {name}\naors = {name}\n"
            # Dial's time-out hangs the agent's leg up with no cause, which would go out as
            # "Reason: Q.850;cause=0" on the CANCEL; ring_all's "completed elsewhere" stays.
            f"suppress_q850_reason_headers = yes\n"
            f"callerid = {agent.id} <{agent.id}>\n\n"
            f"[{name}]\ntype = auth\nauth_type = userpass\nusername = {name}\npassword = {agent.password}\n\n"
            f"[{name}]\ntype = aor\nmax_contacts = 1\nremove_existing = yes\n{aor_extra}"
        )
    return "\n".join(blocks)


def agi_address(settings: Settings) -> str:
    """host:port of the engine's FastAGI listener, as the dialplan's agi:// URL needs it."""
    a = settings.engine.agi
    host = f"[{a.listen}]" if ":" in a.listen else a.listen
    return f"{host}:{a.port}"


def _ivr_numbers(settings: Settings) -> dict[str, str]:
    return dict(settings.ivr.settings.numbers) if settings.ivr is not None else {}


def _survey_flow(settings: Settings) -> str | None:
    ivr = settings.ivr
    if ivr is None or not ivr.settings.survey.enabled or ivr.settings.survey.flow not in ivr.flows.flows:
        return None
    return ivr.settings.survey.flow


def _inbound_block(settings: Settings) -> str:
    out = []
    flows = _ivr_numbers(settings)
    for q in settings.queues:
        for n in q.dialled():
            skills = "+".join(f"{k}={v}" for k, v in sorted(n.skills.items()))
            head = (
                f"exten => {n.number},1,Set(__{dp.QUEUE}={q.name})\n"
                f" same => n,Set({dp.OFFERED}={q.name})\n"
                f" same => n,Set({dp.PATH}={q.name})\n"
                f" same => n,Set({dp.PRIORITY}={n.priority})\n"
                f" same => n,Set({dp.SKILLS}={skills})\n"
                f" same => n,Set({dp.PRES}=${{CALLERID(pres)}})\n"
                f" same => n,Set({dp.FROM}=${{BASE64_ENCODE(${{PJSIP_HEADER(read,From)}})}})\n"
                f" same => n,Set(CHANNEL(hangup_handler_push)={dp.ENDED},s,1)\n"
            )
            flow = flows.get(n.number)
            if flow is not None:
                # The IVR first (the engine, over FastAGI), then [hotline-ivr] reads its verdict.
                # Argument 2 tells the flow the caller withheld the number.
                out.append(
                    head + f" same => n,Set({dp.IVR_VERDICT}=)\n"
                    f" same => n,AGI(agi://{agi_address(settings)}/{flow},${{CHANNEL(linkedid)}},"
                    f"${{IF(${{REGEX(\"^(prohib|unavailable)\" ${{{dp.PRES}}})}}?1:0)}})\n"
                    f" same => n,Goto({dp.IVR},s,1)"
                )
                continue
            out.append(
                head + " same => n,Set(HOTLINE_JOINED=${EPOCH})\n"
                f" same => n,Set({dp.JOINED_AT}=${{STRFTIME(,,%s.%3q)}})\n"
                f" same => n,Goto({dp.HOLD},{q.name},1)"
            )
    return "\n".join(out)


def _hold_block(settings: Settings) -> str:
    out = []
    for q in settings.queues:
        if q.music:
            # Early media (183 with SDP), never an answer: a caller who came without the IVR
            # pays nothing until an agent answers. The channel's class also serves an agent's hold.
            hears = (f" same => n,Set(CHANNEL(musicclass)={q.music})\n"
                     " same => n,Progress()\n"
                     " same => n,StartMusicOnHold()\n")
        else:
            hears = " same => n,Ringing()\n"
        out.append(
            f"exten => {q.name},1,MSet({dp.MUSIC}={q.music},{dp.MUSIC_FOR}={q.name})\n" + hears +
            # The join event comes right before a Wait: the engine only Redirects a caller it
            # knows to be in the loop. Then every queue shares one wait loop (hotline-wait),
            # so a queue an engine reload adds works without a dialplan reload.
            f" same => n,UserEvent({dp.JOIN_EVENT},Queue: {q.name},Pres: ${{{dp.PRES}}},"
            f"CallPriority: ${{{dp.PRIORITY}}},CallSkills: ${{{dp.SKILLS}}},From: ${{{dp.FROM}}})\n"
            " same => n,Wait(1)\n"
            f" same => n,Goto({dp.WAIT},s,1)"
        )
    return "\n".join(out)


# The columns of the account table; tickets/account.py reads them by these names.
CEL_COLUMNS = ("eventtime", "eventtype", "userdeftype", "eventextra", "linkedid", "uniqueid", "cidnum", "cidname",
               "channame")
CEL_FIELDS = ("eventtime(float)", "eventtype", "userdeftype", "eventextra", "linkedid", "uniqueid", "num", "name",
              "channame")
CEL_TABLE = "hotline_cel"


def _cel_section(settings: Settings) -> str:
    db = settings.engine.account.cel_db
    if db is None:
        return "; (no account kept: account.cel_db is null)"
    return (f"[{db}]\ntable = {CEL_TABLE}\ncolumns = {', '.join(CEL_COLUMNS)}\n"
            f"fields = {', '.join(CEL_FIELDS)}\nbusy_timeout = 1000")


def render(settings: Settings, extra_manager_users: str = "") -> dict[str, str]:
    """Return {file name: text} for every file Asterisk needs from us."""
    e = settings.engine
    survey = _survey_flow(settings)
    values = {
        "AMI_BIND": e.ami.host,
        "AMI_PORT": str(e.ami.port),
        "AMI_USER": e.ami.username,
        "AMI_SECRET": e.ami.secret,
        "EXTRA_MANAGER_USERS": extra_manager_users,
        "SIP_BIND": e.sip.bind,
        "SIP_PORT": str(e.sip.port),
        "TRUNK_ADDRESS": e.sip.trunk_address,
        "TRUNK_PORT": str(e.sip.trunk_port),
        "RTP_START": str(e.sip.rtp_start),
        "RTP_END": str(e.sip.rtp_end),
        "AGENTS": _agents_block(settings),
        "REC_DIR": str(e.recordings.dir),
        "ENGINE_STALE": str(e.fallback.engine_stale),
        "MAX_HOLD": str(e.fallback.max_hold),
        "FALLBACK_DIAL": "&".join(f"PJSIP/agent{a.id}" for a in settings.agents),
        "INBOUND": _inbound_block(settings),
        "HOLD": _hold_block(settings),
        "QUEUE_MUSIC": "\n".join(f"{dp.QUEUE_MUSIC_PREFIX}{q.name}={q.music}" for q in settings.queues),
        "MUSIC_DIR": MUSIC_DIR,
        "AGI": agi_address(settings),
        "ANNOUNCE": f"aA({JOB_NUMBER}:{JOB_NUMBER})" if _announce(settings) else "",
        "SURVEY_GOTO": (f" same => n,Goto({dp.SURVEY},s,1)" if survey is not None
                        else " same => n,NoOp(no survey: ivr.yaml survey.enabled is false)"),
        "SURVEY_FLOW": survey or "survey",
        "CEL_ENABLE": "yes" if e.account.cel_db is not None else "no",
        "CEL_DB_SECTION": _cel_section(settings),
        "CONF_MAX_MEMBERS": str(CONF_MAX_MEMBERS),
    }
    files = {}
    for template in sorted(CONF_DIR.glob("*.conf.in")):
        files[template.name.removesuffix(".in")] = fill(template.read_text(encoding="utf-8"), values)
    for name in STATIC:
        files[name] = (CONF_DIR / name).read_text(encoding="utf-8")
    return files


def _trusted_owner(before: os.stat_result) -> bool:
    """Keep the owner of the file we replace only if it is a regular file: a link planted at
    its name would hand the secrets to whoever planted it. (Whoever may write regular files
    into Asterisk's configuration folder already commands Asterisk.)"""
    return stat.S_ISREG(before.st_mode)


def write_private(path: Path, text: str) -> None:
    """Write a rendered file 0640 whatever the umask: manager.conf and pjsip.conf hold secrets.
    A file it replaces keeps its owner and group: a distribution's Asterisk runs as its own
    user (Debian: asterisk:asterisk) and must still read what root installs."""
    try:
        before: os.stat_result | None = path.lstat()
    except FileNotFoundError:
        before = None
    tmp = path.with_suffix(path.suffix + ".tmp")
    # A stale .tmp goes first, and ours is created new, never through a link: whoever can
    # write the folder must not get root to write the secrets into a file of their choosing.
    with contextlib.suppress(FileNotFoundError):
        tmp.unlink()
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o640)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        os.fchmod(fh.fileno(), 0o640)  # the umask may have taken bits off
        if before is not None and os.geteuid() == 0 and _trusted_owner(before):
            os.fchown(fh.fileno(), before.st_uid, before.st_gid)
        fh.write(text)
    os.replace(tmp, path)


# The answering agent's job number prompt, in the caller's language (HOTLINE_LANG, set by the IVR).
JOB_NUMBER = f'hotline/${{IF($["${{{dp.LANGUAGE}}}" = "en"]?en:zh)}}/agent-${{CUT(EXTEN,*,1)}}'


def _announce(settings: Settings) -> bool:
    return settings.ivr is not None and settings.ivr.settings.announce_agent


def install(settings: Settings, etc_dir: Path, sounds_dir: Path, extra_manager_users: str = "") -> list[Path]:
    """Write the rendered files (secrets inside: mode 0640), the shipped prompts with the
    admin's own recordings over them (sounds/hotline/<language>/), and each agent's job
    number announcement (agent-<id>, put together from the prompts)."""
    written = []
    etc_dir.mkdir(parents=True, exist_ok=True)
    for name, text in render(settings, extra_manager_users).items():
        path = etc_dir / name
        write_private(path, text)
        written.append(path)
    target = sounds_dir / "hotline"
    target.mkdir(parents=True, exist_ok=True)
    override = settings.ivr.settings.prompts.override_dir if settings.ivr is not None else None
    if override is not None and not override.is_dir():
        override = None  # the configured folder holds no recordings yet: the shipped prompts
    written += prompts.install_sounds(target, override)
    if _announce(settings):
        recorded = prompts.available(override)
        for agent in settings.agents:
            for lang in prompts.LANGS:
                name = speech.agent_prompt_name(agent.id)
                if override is not None and name in recorded.get(lang, frozenset()) and \
                        name not in prompts.available(None).get(lang, frozenset()):
                    continue  # the admin recorded this agent's announcement: theirs stands
                out = target / lang / name
                written += prompts.concat(speech.agent_announcement(agent.id, lang), lang, out, override)
    return written


def music_warnings(settings: Settings, etc_dir: Path, sounds_dir: Path) -> list[str]:
    """What stands between the queues' `music:` and a caller hearing it on this Asterisk: an
    empty music folder (waiting callers and an agent's hold get silence), or a class that
    neither musiconhold.conf nor musiconhold_local.conf defines (Asterisk plays [default])."""
    out = []
    folder = sounds_dir.parent / MUSIC_DIR
    try:
        files = [p for p in folder.iterdir() if p.is_file() and not p.name.startswith(".")]
    except OSError:
        files = []
    if not files:
        out.append(f"no music on hold in {folder}: callers waiting in a queue with music, and callers an agent "
                   f"holds, hear silence. Install Debian's {MUSIC_PACKAGE} (apt-get install {MUSIC_PACKAGE}; "
                   "CC-BY-SA 3.0) or put 8 kHz WAV files of your own there, then `asterisk -rx 'moh reload'`")
    local = etc_dir / "musiconhold_local.conf"
    try:
        defined = set(re.findall(r"^\s*\[([A-Za-z0-9_-]+)\]", local.read_text(encoding="utf-8"), re.MULTILINE))
    except OSError:
        defined = set()
    defined.add(MUSIC_CLASS)
    for q in settings.queues:
        if q.music and q.music not in defined:
            out.append(f"queue {q.name}: music class {q.music!r} is defined neither in musiconhold.conf nor in "
                       f"{local}: its callers hear [{MUSIC_CLASS}]; add a [{q.music}] section there")
    return out
