"""The admin's pages through the real app on a real store: forms, imports, figures, audit."""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import UTC, datetime
from decimal import Decimal
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from tutelage.records import Project, RubricCriterion, TaskKind
from tutelage.store import Store
from tutelage.store.projects import get_project, project_record
from tutelage.store.tables import ComparisonRow, ImportRow, ProjectRow, PromptRow, UserRow
from tutelage.store.workspace_tables import (
    AssignmentRow,
    AuditRow,
    InvitationRow,
    ItemRow,
    MembershipRow,
)
from tutelage.web import ServerSettings, create_app
from tutelage.web.admin_forms import RubricError, parse_rubric
from tutelage.workspace.accounts import create_user
from tutelage.workspace.judging import submit_judgment
from tutelage.workspace.membership import new_project
from tutelage.workspace.queue import next_task
from tutelage.workspace.submissions import ComparisonSubmission
from tutelage.workspace.throughput import hourly_judgments
from workspace_fixtures import PASSWORD, World, actor_of, make_world, pairs_file

PICK_A = ComparisonSubmission(choice="a", active_seconds=90)  # 90 s at 120/h: 3.00 each


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store, ServerSettings()), follow_redirects=False) as test_client:
        yield test_client


def sign_in(client: TestClient, email: str) -> str:
    """Sign in through the API; return the session's CSRF token."""
    response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    return token


def add_admin(store: Store, handle: str = "boss") -> str:
    with store.session() as session:
        create_user(
            session,
            email=f"{handle}@example.org",
            password=PASSWORD,
            handle=handle,
            role="admin",
        )
    return f"{handle}@example.org"


def law_project(store: Store) -> int:
    """Create an admin (admin@example.org) and an empty project; return the project's id."""
    with store.session() as session:
        admin = actor_of(
            create_user(
                session, email="admin@example.org", password=PASSWORD, handle="admin", role="admin"
            )
        )
        return new_project(session, actor=admin, project=Project(name="law")).id


def text_of(html: str) -> str:
    """The page's text, tags dropped and whitespace squeezed, for phrases split over lines."""
    words = " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())
    return re.sub(r" ([,.])", r"\1", words)


def count(store: Store, column: object) -> int:
    with store.session() as session:
        return int(session.scalar(select(func.count(column))) or 0)  # type: ignore[call-overload]


def project_form(**changes: object) -> dict[str, object]:
    form: dict[str, object] = {
        "name": "oncology",
        "domain": "medicine",
        "instructions": "Prefer the *accurate* answer.",
        "rubric": "accuracy | Is every claim correct? | 1 | 7\n\nclarity | Easy to follow\n",
        "task_kinds": ["comparison", "rating"],
        "overlap": "2",
        "required_expertise": "oncology, medicine",
        "rationale_required": "on",
        "qualification_pass_mark": "0.8",
        "gold_rate": "0.1",
        "lease_seconds": "600",
        "pay_rate_per_hour": "95.50",
        "currency": "eur",
        "nda_text": "Say nothing.",
        "licence": "CC-BY-4.0",
        "consent": "Used to train models.",
    }
    form.update(changes)
    return form


def judge(world: World, expert: int, times: int) -> None:
    for _ in range(times):
        with world.store.session() as session:
            assignment = next_task(
                session, actor=world.experts[expert], project_id=world.project_id
            )
            assert assignment is not None
            submit_judgment(
                session,
                actor=world.experts[expert],
                assignment_id=assignment.id,
                submission=PICK_A,
            )


def test_admin_pages_refuse_experts_and_send_strangers_to_sign_in(
    client: TestClient, store: Store, tmp_path: Path
) -> None:
    world = make_world(store, tmp_path, pairs=2, experts=1)
    anonymous = client.get("/admin")
    assert anonymous.status_code == 303
    assert anonymous.headers["location"] == "/login?next=%2Fadmin"

    csrf = sign_in(client, "expert0@example.org")
    project = f"/admin/projects/{world.project_id}"
    for page in ("/admin", "/admin/projects/new", project, f"{project}/edit",
                 f"{project}/audit", "/admin/audit"):  # fmt: skip
        response = client.get(page)
        assert response.status_code == 403, page
        assert "only an admin may do this" in response.text
    created = client.post("/admin/projects/new", data={**project_form(), "csrf_token": csrf})
    added = client.post(f"{project}/members", data={"handle": "admin", "csrf_token": csrf})
    assert created.status_code == added.status_code == 403
    assert count(store, ProjectRow.id) == 1
    assert count(store, MembershipRow.id) == 1


def test_the_project_form_refuses_a_bad_rubric_line_then_stores_the_project(
    client: TestClient, store: Store
) -> None:
    csrf = sign_in(client, add_admin(store))
    form = client.get("/admin/projects/new")
    assert form.status_code == 200
    assert 'name="nda_text"' in form.text
    assert "makes every member accept the new text again" in text_of(form.text)

    rubric = "accuracy | Correct? | 1 | 5\nclarity | Clear? | 1 | five\n"
    refused = client.post(
        "/admin/projects/new",
        data={**project_form(rubric=rubric, overlap="0", currency="euro"), "csrf_token": csrf},
    )
    assert refused.status_code == 400
    page = text_of(refused.text)
    assert "Nothing was saved." in page
    assert "line 2: min and max must be whole numbers, got '1' and 'five'" in page
    assert "greater than or equal to 1" in page  # the overlap, next to its field
    assert "three letters, such as USD or EUR" in page  # the currency column holds three
    assert 'value="oncology"' in refused.text  # what was typed is kept
    assert "clarity | Clear? | 1 | five" in unescape(refused.text)
    assert count(store, ProjectRow.id) == 0
    assert count(store, AuditRow.id) == 1  # the admin's account only

    without_csrf = client.post("/admin/projects/new", data=project_form())
    assert without_csrf.status_code == 403
    assert count(store, ProjectRow.id) == 0

    created = client.post("/admin/projects/new", data={**project_form(), "csrf_token": csrf})
    assert created.status_code == 303
    with store.session() as session:
        row = get_project(session, name="oncology")
        stored = project_record(row)
        assert created.headers["location"].startswith(f"/admin/projects/{row.id}?done=")
    assert stored == Project(
        name="oncology",
        domain="medicine",
        instructions="Prefer the *accurate* answer.",
        rubric=(
            RubricCriterion(
                name="accuracy", description="Is every claim correct?", scale_min=1, scale_max=7
            ),
            RubricCriterion(name="clarity", description="Easy to follow"),
        ),
        task_kinds=(TaskKind.COMPARISON, TaskKind.RATING),
        overlap=2,
        required_expertise=frozenset({"oncology", "medicine"}),
        rationale_required=True,
        qualification_pass_mark=0.8,
        gold_rate=0.1,
        lease_seconds=600,
        pay_rate_per_hour=Decimal("95.50"),
        currency="EUR",
        nda_text="Say nothing.",
        licence="CC-BY-4.0",
        consent="Used to train models.",
    )
    page = client.get(created.headers["location"])
    assert page.status_code == 200
    assert "Created the project oncology." in page.text

    duplicate = client.post("/admin/projects/new", data={**project_form(), "csrf_token": csrf})
    assert duplicate.status_code == 400
    assert "a project named &#39;oncology&#39; exists already" in duplicate.text
    assert count(store, ProjectRow.id) == 1


def test_parse_rubric_names_the_line_of_each_mistake() -> None:
    assert parse_rubric("# comment\n\nsafety") == (RubricCriterion(name="safety"),)
    assert parse_rubric("a | pipes | in | text | 0 | 3")[0].description == "pipes | in | text"
    for text, expected in [
        ("ok\nbad | one | 2", "line 2: write name | description | min | max"),
        ("ok\n\n | nameless", "line 3: the criterion needs a name"),
        ("ok | x | 5 | 1", "line 1: criterion 'ok': scale_min (5) must be below scale_max (1)"),
        ("ok\nok", "line 2: 'ok' is named on line 1 already"),
    ]:
        with pytest.raises(RubricError, match=re.escape(expected)):
            parse_rubric(text)


def test_changing_the_nda_is_audited_and_the_audit_page_shows_who_did_what(
    client: TestClient, store: Store, tmp_path: Path
) -> None:
    world = make_world(store, tmp_path, pairs=2, experts=1)
    csrf = sign_in(client, "admin@example.org")
    edit = f"/admin/projects/{world.project_id}/edit"
    form = client.get(edit)
    assert form.status_code == 200
    assert 'value="cardio"' in form.text
    assert "accuracy |  | 1 | 5" in form.text

    saved = client.post(
        edit,
        data={
            **project_form(name="cardio", rubric="accuracy", task_kinds=["comparison"]),
            "nda_text": "Keep it confidential, now also after the project ends.",
            "csrf_token": csrf,
        },
    )
    assert saved.status_code == 303
    landing = client.get(saved.headers["location"])
    assert "The NDA changed: every member must accept it again." in landing.text
    with store.session() as session:
        actions = session.scalars(
            select(AuditRow.action).where(AuditRow.project_id == world.project_id)
        ).all()
    assert "nda.change" in actions and "project.update" in actions

    audit = client.get(f"/admin/projects/{world.project_id}/audit")
    assert audit.status_code == 200
    rows = re.findall(r"<tr>\s*<td[^>]*>([^<]*)</td>\s*<td>([^<]*)</td>\s*<td><code>([^<]*)",
                      audit.text)  # fmt: skip
    assert [(who, action) for _, who, action in rows[:2]] == [
        ("admin", "nda.change"),
        ("admin", "project.update"),
    ]
    assert ("expert0", "nda.accept") in [(who, action) for _, who, action in rows]
    assert rows[0][0].endswith(" UTC")
    assert "&#34;nda_text&#34;" in audit.text  # the details, as JSON

    members_only = client.get(f"/admin/projects/{world.project_id}/audit?action=member.")
    actions_shown = re.findall(r"<td><code>([^<]*)</code></td>", members_only.text)
    assert actions_shown == ["member.add"]
    everything = client.get("/admin/audit?action=user.")
    assert re.findall(r"<td><code>([^<]*)</code></td>", everything.text) == ["user.create"] * 2


def test_an_upload_is_all_or_nothing_and_shows_its_report_once_stored(
    client: TestClient, store: Store, tmp_path: Path
) -> None:
    project_id = law_project(store)
    csrf = sign_in(client, "admin@example.org")
    broken = b'{"prompt": "Q?", "chosen": "Yes.", "rejected": "No."}\n{"prompt": "Q2?",\n'

    refused = client.post(
        f"/admin/projects/{project_id}/import",
        data={"format": "trl", "source": "broken-batch", "csrf_token": csrf},
        files={"file": ("broken.jsonl", broken, "application/jsonl")},
    )
    assert refused.status_code == 400
    page = text_of(refused.text)
    assert "Nothing was imported: line 2 of broken.jsonl:" in page
    assert 'value="broken-batch"' in refused.text
    assert '<option value="trl" selected>' in refused.text
    assert count(store, ImportRow.id) == count(store, PromptRow.id) == 0

    content = pairs_file(tmp_path, 3).read_bytes()
    upload = {"format": "auto", "source": "seed", "csrf_token": csrf}

    imported = client.post(
        f"/admin/projects/{project_id}/import",
        data=upload,
        files={"file": ("small.jsonl", content, "application/jsonl")},
    )
    assert imported.status_code == 303
    report = client.get(imported.headers["location"])
    page = text_of(report.text)
    assert "Imported small.jsonl" in page
    assert "3 lines read, 3 stored (format trl, source seed)" in page
    with store.session() as session:
        assert session.scalar(select(func.count(PromptRow.id))) == 3
        assert session.scalar(select(func.count(ComparisonRow.id))) == 3

    again = client.post(
        f"/admin/projects/{project_id}/import",
        data=upload,
        files={"file": ("small.jsonl", content, "application/jsonl")},
    )
    assert again.status_code == 400
    assert "was imported into project &#39;law&#39; already" in again.text
    assert count(store, ComparisonRow.id) == 3
    # The stored import is in the audit log, with who and how much; the refused ones are not.
    with store.session() as session:
        imports = session.execute(
            select(AuditRow.target, AuditRow.details, UserRow.email)
            .join(UserRow, UserRow.id == AuditRow.actor_id)
            .where(AuditRow.action == "data.import", AuditRow.project_id == project_id)
        ).all()
    assert [(target, email) for target, _, email in imports] == [
        ("small.jsonl", "admin@example.org")
    ]
    assert imports[0].details["stored"] == 3 and imports[0].details["source"] == "seed"

    mixed = b'{"prompt": "Q?", "chosen": "Yes.", "rejected": "No."}\n{not json\n'
    skipped = client.post(
        f"/admin/projects/{project_id}/import",
        data={**upload, "source": "mixed", "skip_invalid": "on"},
        files={"file": ("mixed.jsonl", mixed, "application/jsonl")},
    )
    assert skipped.status_code == 303
    page = text_of(client.get(skipped.headers["location"]).text)
    assert "2 lines read, 1 stored, 1 skipped" in page
    assert "mixed.jsonl:2:" in page  # the first examples, named by the uploaded file
    assert "/tmp" not in page


def test_the_project_page_shows_progress_cost_throughput_and_each_expert(
    client: TestClient, store: Store, tmp_path: Path
) -> None:
    world = make_world(store, tmp_path, pairs=6, experts=2)
    judge(world, 0, 2)
    judge(world, 1, 1)
    sign_in(client, "admin@example.org")

    response = client.get(f"/admin/projects/{world.project_id}")
    assert response.status_code == 200
    page = text_of(response.text)
    # 6 items x overlap 3 = 18 judgments, 3 made at 3.00 each; 15 to go.
    assert "0 / 6 items done 6 items needing judgments 0 in lease now" in page
    assert "3 judgments made 15 judgments to finish" in page
    assert "9.00 USD cost so far 3.00 USD cost per judgment 45.00 USD projected" in page
    assert "3 judgments in the last 60 minutes, 3 in the last 24 hours" in page
    experts = response.text.split('id="experts"')[1].split("</table>")[0]
    assert [text_of(row) for row in re.findall(r"<tr>(.*?)</tr>", experts, re.S)[1:]] == [
        "expert0 2 0.05 6.00 USD — 0",
        "expert1 1 0.03 3.00 USD — 0",
    ]
    assert response.text.count('class="bar h') == 24
    assert 'class="bar h20"' in response.text  # the current hour is the busiest
    for fmt in ("trl", "hh-rlhf", "chat"):
        assert f"/api/v1/projects/{world.project_id}/export?format={fmt}" in response.text
    overview = text_of(client.get("/admin").text)
    assert "cardio medicine 0 / 6 3 9.00 USD" in overview

    # The CSP refuses inline code and styles: every admin page does without them.
    for path in ("/admin", f"/admin/projects/{world.project_id}", "/admin/projects/new",
                 f"/admin/projects/{world.project_id}/edit", "/admin/audit"):  # fmt: skip
        html = client.get(path).text
        assert " style=" not in html and "<style" not in html, path
        assert not re.search(r"<script(?![^>]*\bsrc=)(?![^>]*application/json)", html), path
        assert not re.search(r"<[^>]+\son[a-z]+=", html), path


def test_hourly_judgments_counts_each_clock_hour_of_the_last_day(
    store: Store, tmp_path: Path
) -> None:
    world = make_world(store, tmp_path, pairs=4, experts=1)
    judge(world, 0, 4)
    now = datetime(2031, 5, 6, 12, 30, tzinfo=UTC)
    moments = [
        datetime(2031, 5, 6, 12, 10, tzinfo=UTC),  # this hour, so far
        datetime(2031, 5, 6, 9, 0, tzinfo=UTC),  # on the hour: counts for 09:00
        datetime(2031, 5, 6, 8, 59, 59, tzinfo=UTC),
        datetime(2031, 5, 5, 12, 59, tzinfo=UTC),  # before the first hour shown (13:00)
    ]
    with store.session() as session:
        ids = session.scalars(select(AssignmentRow.id).order_by(AssignmentRow.id)).all()
        for assignment_id, moment in zip(ids, moments, strict=True):
            session.execute(
                update(AssignmentRow)
                .where(AssignmentRow.id == assignment_id)
                .values(finished_at=moment)
            )
    with store.session() as session:
        hours = hourly_judgments(session, project_id=world.project_id, now=now)
    assert len(hours) == 24
    assert hours[0].start == datetime(2031, 5, 5, 13, tzinfo=UTC)
    assert hours[-1].start == datetime(2031, 5, 6, 12, tzinfo=UTC)
    counted = {hour.start.hour: hour.judgments for hour in hours if hour.judgments}
    assert counted == {12: 1, 9: 1, 8: 1}


def test_members_items_and_gold_are_managed_from_the_project_page(
    client: TestClient, store: Store, tmp_path: Path
) -> None:
    world = make_world(store, tmp_path, pairs=3, experts=1)
    csrf = sign_in(client, "admin@example.org")
    page = f"/admin/projects/{world.project_id}"
    with store.session() as session:
        create_user(session, email="nurse@example.org", password=PASSWORD, handle="nurse")

    unknown = client.post(f"{page}/members", data={"handle": "nobody", "csrf_token": csrf})
    assert unknown.status_code == 404
    assert "no user &#39;nobody&#39;" in unknown.text
    assert 'value="nobody"' in unknown.text

    added = client.post(f"{page}/members", data={"handle": "nurse", "csrf_token": csrf})
    assert added.status_code == 303
    assert "nurse is a member now." in client.get(added.headers["location"]).text
    tagged = client.post(
        f"{page}/expertise",
        data={"handle": "nurse", "expertise": "cardiology, triage", "csrf_token": csrf},
    )
    assert tagged.status_code == 303
    removed = client.post(f"{page}/members/expert0/remove", data={"csrf_token": csrf})
    assert removed.status_code == 303
    with store.session() as session:
        members = session.scalars(
            select(UserRow.handle)
            .join(MembershipRow, MembershipRow.user_id == UserRow.id)
            .where(MembershipRow.project_id == world.project_id)
        ).all()
        expertise = session.scalar(select(UserRow.expertise).where(UserRow.handle == "nurse"))
    assert members == ["nurse"]
    assert expertise == ["cardiology", "triage"]

    too_few = client.post(
        f"{page}/items",
        data={"kinds": ["rating"], "max_answers": "1", "redteam_slots": "0", "csrf_token": csrf},
    )
    assert too_few.status_code == 400
    assert "greater than or equal to 2" in too_few.text
    built = client.post(
        f"{page}/items",
        data={"kinds": ["rating"], "max_answers": "4", "redteam_slots": "2", "csrf_token": csrf},
    )
    assert built.status_code == 303
    assert "Built items: 6 rating." in client.get(built.headers["location"]).text
    gold = client.post(
        f"{page}/known-answers",
        data={"purpose": "gold", "count": "2", "source": "seed", "csrf_token": csrf},
    )
    assert "Made 2 gold items." in client.get(gold.headers["location"]).text
    with store.session() as session:
        query = select(ItemRow.purpose, func.count()).group_by(ItemRow.purpose)
        purposes = {purpose: n for purpose, n in session.execute(query)}
    assert purposes == {"task": 3 + 6, "gold": 2}


def test_accounts_are_created_and_invitations_shown_once_on_the_overview(
    client: TestClient, store: Store
) -> None:
    csrf = sign_in(client, add_admin(store))
    account = {
        "email": "ada@example.org",
        "handle": "ada",
        "role": "reviewer",
        "expertise": "law",
        "csrf_token": csrf,
    }
    weak = client.post("/admin/users", data={**account, "password": "tooshort7"})
    assert weak.status_code == 422
    assert "a password needs at least 10 characters" in weak.text
    assert 'value="ada@example.org"' in weak.text and "tooshort7" not in weak.text
    assert count(store, UserRow.id) == 1

    created = client.post("/admin/users", data={**account, "password": PASSWORD})
    assert created.status_code == 303
    overview = text_of(client.get(created.headers["location"]).text)
    assert "Created the account ada (reviewer)." in overview
    assert "ada ada@example.org reviewer law yes" in overview

    invited = client.post(
        "/admin/invitations",
        data={"email": "bob@example.org", "role": "expert", "project_id": "", "csrf_token": csrf},
    )
    assert invited.status_code == 200
    link = re.search(r'value="(http://testserver/invite/[\w-]+)"', invited.text)
    assert link is not None
    assert client.get(link[1].removeprefix("http://testserver")).status_code == 200
    assert "/invite/" not in client.get("/admin").text
    spoofed = client.get("/admin", params={"done": "<a href=//evil.example>Sign in</a>"})
    assert "&lt;a href=//evil.example&gt;" in spoofed.text  # shown as text, never as markup
    with store.session() as session:
        assert session.scalar(select(InvitationRow.email)) == "bob@example.org"
