from __future__ import annotations

import email
import email.policy
import logging
import os

from qfakes import MSG, ScriptedAgents, envelope, maildir_messages

from pymailsrv.delivery.base import Route


async def test_fast_path_local_delivery_spools_nothing(harness, directory, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    async with harness() as h:
        qid = await h.manager.submit(envelope("s@remote.test", "alice@example.test", "bob+x@example.test"), MSG)
        assert os.listdir(tmp_path / "q" / "active") == []
        alice = maildir_messages(directory.mailboxes["alice@example.test"])
        bob = maildir_messages(directory.mailboxes["bob@example.test"])
    assert len(alice) == 1 and len(bob) == 1
    assert alice[0].startswith(b"Return-Path: <s@remote.test>\nDelivered-To: alice@example.test\nFrom: a@b.test\n")
    assert b"\r\n" not in alice[0]
    assert f"{qid}: from=<s@remote.test>, size={len(MSG)}, nrcpt=2 (queue active)" in caplog.text
    assert f"{qid}: to=<alice@example.test>, relay=virtual, delay=0, delays=0/0/0/0, dsn=2.0.0, " \
           "status=sent (delivered to maildir)" in caplog.text
    assert f"{qid}: to=<bob+x@example.test>, relay=virtual" in caplog.text
    assert f"{qid}: removed" in caplog.text


async def test_alias_expansion_and_unknown_user_bounce(harness, directory, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    directory.aliases["team@example.test"] = ["alice@example.test", "bob@example.test"]
    directory.aliases["self@example.test"] = ["self@example.test", "alice@example.test"]
    directory.add_mailbox("self@example.test", str(tmp_path / "vmail"))
    directory.add_mailbox("sender@example.test", str(tmp_path / "vmail"))
    async with harness() as h:
        await h.manager.submit(envelope("sender@example.test", "team@example.test", "self@example.test",
                                        "nobody@example.test"), MSG)
        await h.manager.wait_idle()
    assert len(maildir_messages(directory.mailboxes["alice@example.test"])) == 1  # duplicates removed
    assert len(maildir_messages(directory.mailboxes["bob@example.test"])) == 1
    assert len(maildir_messages(directory.mailboxes["self@example.test"])) == 1
    bounces = maildir_messages(directory.mailboxes["sender@example.test"])
    assert len(bounces) == 1
    msg = email.message_from_bytes(bounces[0], policy=email.policy.default)
    assert msg["Subject"] == "Undelivered Mail Returned to Sender"
    assert "nobody@example.test" in bounces[0].decode()
    assert "status=bounced (User unknown in virtual mailbox table)" in caplog.text
    assert os.listdir(tmp_path / "q" / "active") == []


async def test_remote_deferral_backoff_schedule_and_expiry(harness, clock, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    agents = ScriptedAgents("deferred")
    async with harness(agents, minimal_backoff_time="300s", maximal_backoff_time="1200s",
                       queue_run_delay="1000s", maximal_queue_lifetime="3600s") as h:
        start = clock.time()
        qid = await h.manager.submit(envelope("s@example.test", "x@remote.test"), MSG)
        await h.manager.wait_idle()
        times = [clock.time() - start]
        assert agents.calls[0][0] == Route("smtp", "remote.test")
        def tries() -> int:
            return sum(1 for c in agents.calls if c[2] == ["x@remote.test"])

        for _ in range(8):
            before = tries()
            # advance in small steps so we see exactly when each retry happens
            while tries() == before and clock.time() - start < 6000:
                await clock.advance(50)
                await h.manager.wait_idle()
            if tries() == before:
                break
            times.append(clock.time() - start)
        assert h.manager.entries.get(qid) is None
    # tries at 0, +300, +600, +1200, +1200 ... until the lifetime (3600 s) has passed
    assert times[:5] == [0, 300, 900, 2100, 3300]
    assert len(times) == 6 and times[5] == 4500
    assert f"{qid}: from=<s@example.test>, status=expired, returned to sender" in caplog.text
    assert f"{qid}: sender non-delivery notification:" in caplog.text
    assert "status=deferred (scripted)" in caplog.text


async def test_recipient_done_is_never_redelivered_after_restart(harness, clock, tmp_path):
    agents = ScriptedAgents("sent")
    agents.answers["b@remote2.test"] = ("deferred", "4.4.1", "connection refused")
    async with harness(agents, minimal_backoff_time="60s") as h:
        qid = await h.manager.submit(envelope("s@example.test", "a@remote1.test", "b@remote2.test"), MSG)
        await h.manager.wait_idle()
        assert os.listdir(tmp_path / "q" / "deferred") == [qid]
        del agents.answers["b@remote2.test"]
        await h.restart()
        await clock.advance(61)
        await h.manager.wait_idle()
        assert os.listdir(tmp_path / "q" / "deferred") == []
    assert agents.delivered_to() == ["a@remote1.test", "b@remote2.test", "b@remote2.test"]


async def test_recovery_of_active_file_delivers(harness, clock, tmp_path, directory):
    agents = ScriptedAgents("sent")
    h = harness(agents)
    qid = await h.spool.put(envelope("s@example.test", "x@remote.test"), MSG)
    async with h:
        await h.manager.wait_idle()
    assert agents.delivered_to() == ["x@remote.test"]
    assert not os.path.exists(tmp_path / "q" / "active" / qid)


async def test_delay_warning_once(harness, clock, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    agents = ScriptedAgents("deferred")
    agents.answers["s@example.test"] = ("sent", "2.0.0", "ok")
    async with harness(agents, minimal_backoff_time="600s", maximal_backoff_time="600s",
                       delay_warning_time="1000s") as h:
        qid = await h.manager.submit(envelope("s@example.test", "x@remote.test"), MSG)
        await h.manager.wait_idle()
        for _ in range(5):
            await clock.advance(601)
            await h.manager.wait_idle()
    notices = [c for c in agents.calls if c[2] == ["s@example.test"]]
    assert len(notices) == 1
    msg = email.message_from_bytes(notices[0][3], policy=email.policy.default)
    assert msg["Subject"] == "Delayed Mail (still being retried)"
    assert caplog.text.count(f"{qid}: sender delay status notification") == 1


async def test_never_bounce_a_bounce(harness, clock, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    agents = ScriptedAgents("bounced")
    async with harness(agents) as h:
        await h.manager.submit(envelope("", "x@remote.test"), MSG)
        await h.manager.wait_idle()
    # the failure of a null-sender message goes to postmaster once; that notice's failure is dropped
    rcpts = [c[2] for c in agents.calls]
    assert rcpts == [["x@remote.test"], ["postmaster@mx.example.test"]]
    assert "undeliverable notice dropped" in caplog.text


async def test_null_sender_failures_dropped_when_configured(harness, clock):
    agents = ScriptedAgents("bounced")
    async with harness(agents, notify_null_sender_failures="drop") as h:
        await h.manager.submit(envelope("", "x@remote.test"), MSG)
        await h.manager.wait_idle()
    assert [c[2] for c in agents.calls] == [["x@remote.test"]]


async def test_notify_never_suppresses_bounce(harness):
    agents = ScriptedAgents("bounced")
    async with harness(agents) as h:
        env = envelope("s@example.test", "x@remote.test")
        env.recipients[0].notify = ("NEVER",)
        await h.manager.submit(env, MSG)
        await h.manager.wait_idle()
    assert [c[2] for c in agents.calls] == [["x@remote.test"]]


async def test_fast_path_failure_falls_back_to_spool(harness, directory, tmp_path, clock):
    async with harness(minimal_backoff_time="10s") as h:
        h.store.fail = OSError(28, "No space left on device")
        qid = await h.manager.submit(envelope("s@remote.test", "alice@example.test", "bob@example.test"), MSG)
        await h.manager.wait_idle()
        assert os.listdir(tmp_path / "q" / "deferred") == [qid]
        h.store.fail = None
        await clock.advance(11)
        await h.manager.wait_idle()
        assert os.listdir(tmp_path / "q" / "deferred") == []
    assert len(maildir_messages(directory.mailboxes["alice@example.test"])) == 1


async def test_overquota_bounce_and_defer(harness, directory, tmp_path):
    directory.mailboxes["alice@example.test"] = type(directory.mailboxes["alice@example.test"])(
        "alice@example.test", str(tmp_path / "vmail" / "alice") + "/", 10)
    directory.add_mailbox("s@example.test", str(tmp_path / "vmail"))
    async with harness() as h:
        await h.manager.submit(envelope("s@example.test", "alice@example.test"), MSG)
        await h.manager.wait_idle()
    [bounce] = maildir_messages(directory.mailboxes["s@example.test"])
    assert b"Status: 5.2.2" in bounce
    async with harness(virtual_overquota_bounce="no") as h:
        qid = await h.manager.submit(envelope("s@example.test", "alice@example.test"), MSG)
        await h.manager.wait_idle()
        assert h.manager.entries[qid].state == "deferred"


async def test_delivered_to_loop_bounces(harness, directory):
    directory.add_mailbox("s@example.test", directory.mailboxes["alice@example.test"].maildir + "../s")
    async with harness() as h:
        looped = b"Delivered-To: alice@example.test\r\n" + MSG
        await h.manager.submit(envelope("s@example.test", "alice@example.test"), looped)
        await h.manager.wait_idle()
    assert maildir_messages(directory.mailboxes["alice@example.test"]) == []
    [bounce] = maildir_messages(directory.mailboxes["s@example.test"])
    assert b"Status: 5.4.6" in bounce


async def test_hold_and_control_ops(harness, clock, tmp_path):
    agents = ScriptedAgents("deferred")
    async with harness(agents) as h:
        m = h.manager
        qid = await m.submit(envelope("s@example.test", "x@remote.test"), MSG)
        await m.wait_idle()
        assert await m.control("hold", qid) == (True, "1 message(s) placed on hold")
        assert os.listdir(tmp_path / "q" / "hold") == [qid]
        await clock.advance(10_000)
        await m.wait_idle()
        assert len(agents.calls) == 1
        agents.default = "sent"
        assert (await m.control("release", qid))[0]
        await m.wait_idle()
        assert len(agents.calls) == 2 and qid not in m.entries
        qid2 = await m.submit(envelope("s@example.test", "x@remote.test", hold=True), MSG)
        assert os.listdir(tmp_path / "q" / "hold") == [qid2]
        assert await m.control("delete", "ALL") == (True, "1 message(s) deleted")
        assert await m.control("delete", qid2) == (False, f"{qid2}: no such message")


async def test_flush_retries_now(harness, clock):
    agents = ScriptedAgents("deferred")
    async with harness(agents) as h:
        await h.manager.submit(envelope("s@example.test", "x@remote.test"), MSG)
        await h.manager.wait_idle()
        agents.default = "sent"
        assert await h.manager.control("flush") == (True, "1 message(s) scheduled for delivery")
        await h.manager.wait_idle()
        assert not h.manager.entries
    assert len(agents.calls) == 2


async def test_content_filter_routes_everything_to_filter(harness):
    """The filter the pipeline's content_filter stage recorded in the envelope takes every
    recipient (tests/pipeline/test_stages.py: how the stage chooses it)."""
    agents = ScriptedAgents("sent")
    async with harness(agents) as h:
        flt = "smtp:[127.0.0.1]:10024"
        await h.manager.submit(envelope("s@x.test", "alice@example.test", "y@remote.test", filter=flt), MSG)
        await h.manager.wait_idle()
        assert agents.calls[0][0] == Route("smtp", "[127.0.0.1]:10024")
        assert agents.calls[0][2] == ["alice@example.test", "y@remote.test"]
        # re-injected mail skips the filter (the stage records none)
        await h.manager.submit(envelope("s@x.test", "y@remote.test", skip_filter=True), MSG)
        await h.manager.wait_idle()
        assert agents.calls[1][0] == Route("smtp", "remote.test")


async def test_reserved_queue_id_is_used(harness, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    async with harness() as h:
        qid = h.manager.new_queue_id()
        assert await h.manager.submit(envelope("s@x.test", "alice@example.test"), MSG, queue_id=qid) == qid
    assert f"{qid}: removed" in caplog.text


async def test_destination_concurrency_limit(harness):
    import asyncio

    from pymailsrv.delivery.base import DeliveryResult

    class Slow:
        def __init__(self) -> None:
            self.now = self.peak = 0

        async def deliver(self, route, sender, recipients, content, **kw):
            self.now += 1
            self.peak = max(self.peak, self.now)
            await asyncio.sleep(0.01)
            self.now -= 1
            return [DeliveryResult(r, "sent", "2.0.0", "ok") for r in recipients]

    agents = Slow()
    async with harness(agents, default_process_limit="20", default_destination_concurrency_limit="3") as h:
        for i in range(12):
            await h.manager.submit(envelope("s@x.test", f"r{i}@remote.test"), MSG)
        await h.manager.wait_idle()
        assert h.manager._sems == {}
    assert agents.peak == 3


async def test_same_final_recipient_delivered_once(harness, directory):
    directory.aliases["team@example.test"] = ["alice@example.test", "bob@example.test"]
    async with harness() as h:
        await h.manager.submit(envelope("s@x.test", "alice@example.test", "team@example.test",
                                        "ALICE@example.test"), MSG)
        await h.manager.wait_idle()
    assert len(maildir_messages(directory.mailboxes["alice@example.test"])) == 1
    assert len(maildir_messages(directory.mailboxes["bob@example.test"])) == 1


async def test_stop_lets_deliveries_in_progress_finish(harness, tmp_path):
    import asyncio

    from pymailsrv.delivery.base import DeliveryResult

    class Slow:
        async def deliver(self, route, sender, recipients, content, **kw):
            await asyncio.sleep(0.2)
            return [DeliveryResult(r, "sent", "2.0.0", "ok") for r in recipients]

    h = harness(Slow())
    await h.manager.start()
    await h.manager.submit(envelope("s@x.test", "r@remote.test"), MSG)
    await asyncio.sleep(0.05)
    assert h.manager._busy
    await h.manager.stop()
    assert os.listdir(tmp_path / "q" / "active") == []


async def test_corrupt_file_found_at_delivery_is_quarantined(harness, tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="pymailsrv")
    agents = ScriptedAgents("deferred")
    async with harness(agents, minimal_backoff_time="10s") as h:
        qid = await h.manager.submit(envelope("s@x.test", "r@remote.test"), MSG)
        await h.manager.wait_idle()
        (tmp_path / "q" / "deferred" / qid).write_bytes(b"garbage")
        await h.clock.advance(11)
        await h.manager.wait_idle()
        assert qid not in h.manager.entries
    assert os.listdir(tmp_path / "q" / "corrupt") == [qid]
    assert f"{qid}: corrupt queue file" in caplog.text


async def test_stray_scan_leaves_alone_a_file_still_being_spooled(harness, clock, tmp_path):
    """The spool's group commit renames a file into active/ before put returns (a second syncfs
    makes the names durable): the scan for strays must not take that file from the submit."""
    import asyncio

    agents = ScriptedAgents()
    agents.answers["bob@example.test"] = ("deferred", "4.2.0", "try later")
    async with harness(agents, minimal_backoff_time="300s") as h:
        renamed, release = asyncio.Event(), asyncio.Event()
        commit = h.spool._commits.commit

        async def slow_commit(fd: int, tmp: str, final: str) -> None:
            await commit(fd, tmp, final)
            renamed.set()
            await release.wait()

        h.spool._commits.commit = slow_commit
        qid = h.manager.new_queue_id()
        submit = asyncio.ensure_future(h.manager.submit(
            envelope("s@x.test", "alice@example.test", "bob@example.test"), MSG, queue_id=qid))
        await renamed.wait()  # the fast path delivered to alice; the rest is in active/
        assert os.listdir(tmp_path / "q" / "active") == [qid]
        await h.manager._pick_up_strays()
        assert qid not in h.manager.entries
        release.set()
        await submit
        await h.manager.wait_idle()
        qf = h.manager.entries[qid]
        assert (qf.state, qf.attempts) == ("deferred", 1)
        assert os.listdir(tmp_path / "q" / "deferred") == [qid]
        agents.answers.clear()
        await clock.advance(301)
        await h.manager.wait_idle()
        assert qid not in h.manager.entries
    assert agents.delivered_to().count("alice@example.test") == 1
    assert agents.delivered_to().count("bob@example.test") == 2  # the fast path's try, the retry
    assert os.listdir(tmp_path / "q" / "deferred") == []
