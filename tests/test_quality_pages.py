"""The quality pages and API through the real app on a real store: the admin's figures and
charts, exclusions, settings, and the reviewers' blinded adjudication queue."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from html import unescape
from pathlib import Path

import pytest
from fastapi.testclient import TestClient
from sqlalchemy import func, select, update

from tutelage.store import Store
from tutelage.store.projects import project_record
from tutelage.store.quality_tables import AdjudicationRow, ConsensusLabelRow, ExclusionRow
from tutelage.store.tables import CompletionRow, ProjectRow
from tutelage.store.workspace_tables import AuditRow, ItemRow
from tutelage.web import ServerSettings, create_app
from tutelage.web.admin_forms import ProjectForm
from tutelage.workspace.accounts import create_user
from tutelage.workspace.judging import submit_judgment
from tutelage.workspace.membership import add_member
from tutelage.workspace.queue import next_task
from tutelage.workspace.submissions import ComparisonSubmission
from workspace_fixtures import PASSWORD, World, make_world

FLIP = {"a": "b", "b": "a"}
HOSTILE = "<script>alert('answer')</script> **Good** ![x](http://tracker.example/x.png)"


@pytest.fixture
def client(store: Store) -> Iterator[TestClient]:
    with TestClient(create_app(store, ServerSettings()), follow_redirects=False) as test_client:
        yield test_client


def sign_in(client: TestClient, email: str) -> str:
    response = client.post("/api/v1/auth/login", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["csrf_token"]
    return token


def text_of(html: str) -> str:
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", html)).split())


def judge_all(
    world: World,
    expert: int,
    answer: Callable[[int], str],
    *,
    seconds: float = 60.0,
    rationale: str = "",
) -> None:
    """One expert judges every item the queue serves them, answering `answer(index)` (in
    the item's canonical order) for the item's position among the project's items."""
    actor = world.experts[expert]
    with world.store.session() as session:
        order = session.scalars(
            select(ItemRow.id).where(ItemRow.project_id == world.project_id).order_by(ItemRow.id)
        ).all()
    while True:
        with world.store.session() as session:
            assignment = next_task(session, actor=actor, project_id=world.project_id)
            if assignment is None:
                return
            label = answer(order.index(assignment.item_id))
            swapped = assignment.shown_order[0] != assignment.item.completion_ids[0]
            submit_judgment(
                session,
                actor=actor,
                assignment_id=assignment.id,
                submission=ComparisonSubmission(
                    choice=FLIP.get(label, label) if swapped else label,
                    strength="clear",
                    rationale=rationale,
                    active_seconds=seconds,
                ),
            )


def judged_world(store: Store, folder: Path) -> World:
    """Twelve pairs, each judged by the imported source and four experts, by majority
    vote: expert2 disagrees on every third item, expert3 answers in 3 s and picks b on
    every other; the eight items split 4-1 or 3-2 are below the threshold of 0.9."""
    world = make_world(
        store,
        folder,
        pairs=12,
        experts=4,
        overlap=4,
        consensus_method="majority",
        adjudication_threshold=0.9,
    )
    judge_all(world, 0, lambda i: "a", rationale="<b>A</b> is right <script>x()</script>")
    judge_all(world, 1, lambda i: "a")
    judge_all(world, 2, lambda i: "b" if i % 3 == 0 else "a")
    judge_all(world, 3, lambda i: "b" if i % 2 == 0 else "a", seconds=3.0)
    return world


def add_reviewer(world: World) -> str:
    with world.store.session() as session:
        create_user(
            session, email="rev@example.org", password=PASSWORD, handle="rev", role="reviewer"
        )
        add_member(session, actor=world.admin, project_id=world.project_id, handle="rev")
    return "rev@example.org"


def count(store: Store, column: object, *where: object) -> int:
    with store.session() as session:
        query = select(func.count(column))  # type: ignore[call-overload]
        return int(session.scalar(query.where(*where)) or 0)


def test_the_quality_page_shows_statistics_charts_experts_and_flags(
    client: TestClient, store: Store, tmp_path: Path
) -> None:
    world = judged_world(store, tmp_path)
    sign_in(client, "admin@example.org")
    quality = f"/admin/projects/{world.project_id}/quality"
    assert f'href="{quality}"' in client.get(f"/admin/projects/{world.project_id}").text

    page = client.get(quality)
    assert page.status_code == 200
    text = text_of(page.text)
    assert re.search(r"Krippendorff's alpha, outcome \(nominal\) -?\d\.\d{3} -?\d\.\d{3} to", text)
    # Every strength is "clear": undefined, with the reason, never a number.
    assert re.search(
        r"Krippendorff's alpha, strength \(ordinal\) undefined: every judgment gave the same "
        r"answer, so agreement cannot be told from chance",
        text,
    )
    assert "Figures computed" in text and "Consensus by majority vote" in text
    assert "No consensus labels are stored yet" in text  # a page view stores nothing
    for handle in ("expert0", "expert1", "expert2", "expert3", "seed (imported)"):
        assert handle in text
    assert "trust" in text and "= skill" in text  # each trust comes with its reasons
    assert "expert3 too fast median 3.0 s per judgment" in text  # the flag and its evidence
    assert "<script>x()" not in page.text  # nothing an expert typed is markup

    heatmap = re.search(r'<img id="heatmap" src="([^"]+)"', page.text)
    trust = re.search(r'<img id="trust-chart" src="([^"]+)"', page.text)
    assert heatmap is not None and trust is not None
    for src in (heatmap.group(1), trust.group(1)):
        png = client.get(unescape(src))
        assert png.status_code == 200
        assert png.headers["content-type"] == "image/png"
        assert png.content.startswith(b"\x89PNG\r\n\x1a\n")
    assert client.get(f"{quality}/nothing.png").status_code == 404

    # The page's figures are kept: a later view reads them instead of computing again.
    with store.session() as session:
        session.execute(update(ProjectRow).values(adjudication_threshold=0.5))
    again = text_of(client.get(quality).text)
    assert "Stale: since these figures were computed: the adjudication threshold is now 0.50" in (
        again
    )


def test_experts_and_reviewers_cannot_open_the_admin_quality_page_or_its_api(
    client: TestClient, store: Store, tmp_path: Path
) -> None:
    world = make_world(store, tmp_path, pairs=2, experts=1)
    add_reviewer(world)
    quality = f"/admin/projects/{world.project_id}/quality"
    api = f"/api/v1/projects/{world.project_id}/quality"
    for email in ("expert0@example.org", "rev@example.org"):
        csrf = sign_in(client, email)
        for url in (quality, f"{quality}/agreement.png", api, f"{api}/exclusions"):
            assert client.get(url).status_code == 403, (email, url)
        refused = client.post(
            f"{quality}/exclusions",
            data={"expert": "expert0", "reason": "no", "csrf_token": csrf},
        )
        assert refused.status_code == 403
    assert count(store, ExclusionRow.id) == 0
    # Experts have no adjudication queue either.
    sign_in(client, "expert0@example.org")
    assert client.get(f"/review/projects/{world.project_id}").status_code == 403
    assert client.get(f"/api/v1/projects/{world.project_id}/adjudications/queue").status_code == 403


def test_exclusion_needs_a_reason_and_csrf_is_listed_undone_and_audited(
    client: TestClient, store: Store, tmp_path: Path
) -> None:
    world = judged_world(store, tmp_path)
    csrf = sign_in(client, "admin@example.org")
    quality = f"/admin/projects/{world.project_id}/quality"

    assert "Stale" not in client.get(quality).text

    no_reason = client.post(
        f"{quality}/exclusions", data={"expert": "expert3", "reason": " ", "csrf_token": csrf}
    )
    assert no_reason.status_code == 400
    assert "a reason is required" in text_of(no_reason.text)
    no_csrf = client.post(f"{quality}/exclusions", data={"expert": "expert3", "reason": "fast"})
    assert no_csrf.status_code == 403
    assert count(store, ExclusionRow.id) == 0

    reason = "3 s per pair, <b>always</b> B on even items"
    excluded = client.post(
        f"{quality}/exclusions", data={"expert": "expert3", "reason": reason, "csrf_token": csrf}
    )
    assert excluded.status_code == 303
    page = client.get(excluded.headers["location"])
    text = text_of(page.text)
    assert "Excluded expert3's judgments" in text
    assert re.search(
        rf"expert3 \d{{4}}-\d\d-\d\d [\d:]{{8}} UTC by admin {re.escape(reason)} in force", text
    )
    assert "&lt;b&gt;always&lt;/b&gt;" in page.text
    assert "Stale: since these figures were computed: expert3 excluded" in text
    again = client.post(
        f"{quality}/exclusions", data={"expert": "expert3", "reason": "again", "csrf_token": csrf}
    )
    assert again.status_code == 409
    assert "'expert3' is excluded from project 'cardio' already" in text_of(again.text)

    # Recomputed, expert3's judgments count no more.
    assert client.post(f"{quality}/recompute").status_code == 403  # no CSRF token
    recomputed = client.post(f"{quality}/recompute", data={"csrf_token": csrf})
    assert recomputed.status_code == 303
    assert count(store, ConsensusLabelRow.id) == 12
    with store.session() as session:
        labels = session.scalars(select(ConsensusLabelRow.judgment_ids)).all()
    assert all(len(ids) == 4 for ids in labels)  # three experts and the imported pair
    text = text_of(client.get(quality).text)
    assert "expert3 excluded" in text and "Stale" not in text

    with store.session() as session:
        exclusion = session.scalar(select(ExclusionRow.id))
    undone = client.post(
        f"{quality}/exclusions/{exclusion}/lift", data={"csrf_token": csrf}, follow_redirects=True
    )
    assert undone.status_code == 200
    text = text_of(undone.text)
    assert "expert3's judgments count again" in text
    assert "in force" not in text and "/lift" not in undone.text
    with store.session() as session:
        actions = session.scalars(
            select(AuditRow.action)
            .where(AuditRow.action.startswith("quality."))
            .order_by(AuditRow.id)
        ).all()
    assert actions == ["quality.exclude", "quality.include"]
    audit = text_of(client.get(f"/admin/projects/{world.project_id}/audit?action=quality.").text)
    assert "admin quality.include expert3" in audit and "admin quality.exclude expert3" in audit
    assert reason in audit


def test_the_reviewer_sees_no_identity_and_the_adjudication_overrides_and_is_final(
    client: TestClient, store: Store, tmp_path: Path
) -> None:
    world = judged_world(store, tmp_path)
    with store.session() as session:
        session.execute(update(CompletionRow).where(CompletionRow.id == 1).values(text=HOSTILE))
    csrf = sign_in(client, "admin@example.org")
    client.post(f"/admin/projects/{world.project_id}/quality/recompute", data={"csrf_token": csrf})

    csrf = sign_in(client, add_reviewer(world))
    home = client.get("/")
    assert 'href="/review"' in home.text and 'href="/admin"' not in home.text
    review = client.get("/review")
    assert review.status_code == 200
    assert f'href="/review/projects/{world.project_id}"' in review.text
    queue = f"/review/projects/{world.project_id}"
    nda = client.get(queue)
    assert "Keep it confidential." in nda.text and "Item " not in nda.text  # the NDA first
    assert client.post(f"{queue}/nda", data={"csrf_token": csrf}).status_code == 303

    page = client.get(queue)
    assert page.status_code == 200
    with store.session() as session:
        waiting = session.scalars(
            select(ConsensusLabelRow.item_id)
            .where(ConsensusLabelRow.confidence < 0.9)
            .order_by(ConsensusLabelRow.confidence, ConsensusLabelRow.item_id)
        ).all()
    assert len(waiting) == 8  # every item where someone disagrees
    assert re.findall(r'data-item="(\d+)"', page.text) == [str(i) for i in waiting]
    for who in ("expert0", "expert1", "expert2", "expert3", "example.org", "seed"):
        assert who not in page.text, who
    assert "<script>alert" not in page.text and "<img" not in page.text  # sanitised output
    assert "<strong>Good</strong>" in page.text  # ... rendered as Markdown
    assert "&lt;b&gt;A&lt;/b&gt; is right &lt;script&gt;x()&lt;/script&gt;" in page.text

    item = waiting[0]
    decided = client.post(
        f"{queue}/items/{item}", data={"label": "tie", "note": "both fine", "csrf_token": csrf}
    )
    assert decided.status_code == 303
    after = client.get(decided.headers["location"])
    assert "decided “Tie”" in after.text
    assert f'data-item="{item}"' not in after.text
    with store.session() as session:
        stored = session.scalar(select(ConsensusLabelRow).where(ConsensusLabelRow.item_id == item))
        assert stored is not None
        assert (stored.label, stored.method, stored.confidence) == ("tie", "adjudication", 1.0)

    second = client.post(f"{queue}/items/{item}", data={"label": "a", "csrf_token": csrf})
    assert second.status_code == 409
    assert "an adjudication is final" in text_of(second.text)
    api = client.post(
        f"/api/v1/projects/{world.project_id}/adjudications",
        json={"item_id": item, "label": "b"},
        headers={"X-CSRF-Token": csrf},
    )
    assert api.status_code == 409 and api.json()["error"] == "conflict"
    assert count(store, AdjudicationRow.id) == 1

    # A recomputation keeps the reviewer's label.
    csrf = sign_in(client, "admin@example.org")
    client.post(f"/admin/projects/{world.project_id}/quality/recompute", data={"csrf_token": csrf})
    with store.session() as session:
        kept = session.scalar(
            select(ConsensusLabelRow.label).where(ConsensusLabelRow.item_id == item)
        )
    assert kept == "tie"


def test_the_api_reports_excludes_and_adjudicates(
    client: TestClient, store: Store, tmp_path: Path
) -> None:
    world = judged_world(store, tmp_path)
    csrf = sign_in(client, "admin@example.org")
    headers = {"X-CSRF-Token": csrf}
    base = f"/api/v1/projects/{world.project_id}"

    report = client.get(f"{base}/quality?bootstrap=50")
    assert report.status_code == 200
    body = report.json()
    assert body["method"] == "majority" and len(body["consensus"]) == 12
    assert body["agreement"]["overall"]["strength_alpha"]["value"] is None
    assert {flag["kind"] for flag in body["flags"]} == {"too_fast"}
    assert count(store, ConsensusLabelRow.id) == 0
    stored = client.post(f"{base}/quality/recompute?bootstrap=0", headers=headers)
    assert stored.status_code == 200 and stored.json()["stored_consensus_labels"] == 12

    refused = client.post(
        f"{base}/quality/exclusions", json={"handle": "expert3", "reason": ""}, headers=headers
    )
    assert refused.status_code == 400 and "reason is required" in refused.json()["message"]
    made = client.post(
        f"{base}/quality/exclusions",
        json={"handle": "expert3", "reason": "too fast"},
        headers=headers,
    )
    assert made.status_code == 201
    exclusion = made.json()
    assert (exclusion["handle"], exclusion["excluded_by"], exclusion["in_force"]) == (
        "expert3",
        "admin",
        True,
    )
    lifted = client.post(
        f"{base}/quality/exclusions/{exclusion['id']}/lift",
        json={"reason": "checked"},
        headers=headers,
    )
    assert lifted.status_code == 200
    assert (lifted.json()["in_force"], lifted.json()["lift_reason"]) == (False, "checked")
    again = client.post(f"{base}/quality/exclusions/{exclusion['id']}/lift", headers=headers)
    assert again.status_code == 409
    assert [x["id"] for x in client.get(f"{base}/quality/exclusions").json()] == [exclusion["id"]]

    queue = client.get(f"{base}/adjudications/queue?limit=2").json()
    assert queue["waiting"] == 8 and len(queue["items"]) == 2
    first = queue["items"][0]
    assert set(first) >= {"item_id", "prompt", "answer_a", "answer_b", "judgments"}
    assert "worker" not in str(first) and "expert" not in str(first)
    decided = client.post(
        f"{base}/adjudications", json={"item_id": first["item_id"], "label": "b"}, headers=headers
    )
    assert decided.status_code == 201 and decided.json()["label"] == "b"
    bad = client.post(
        f"{base}/adjudications", json={"item_id": first["item_id"], "label": "c"}, headers=headers
    )
    assert bad.status_code == 422 and bad.json()["fields"][0]["field"] == "label"

    paths = client.get("/api/v1/openapi.json").json()["paths"]
    for path in (
        "/api/v1/projects/{project_id}/quality",
        "/api/v1/projects/{project_id}/quality/recompute",
        "/api/v1/projects/{project_id}/quality/exclusions",
        "/api/v1/projects/{project_id}/quality/exclusions/{exclusion_id}/lift",
        "/api/v1/projects/{project_id}/adjudications/queue",
        "/api/v1/projects/{project_id}/adjudications",
    ):
        assert path in paths, path


def test_the_project_form_validates_the_consensus_settings(
    client: TestClient, store: Store, tmp_path: Path
) -> None:
    world = make_world(store, tmp_path, pairs=1, experts=1)
    csrf = sign_in(client, "admin@example.org")
    edit = f"/admin/projects/{world.project_id}/edit"
    form = client.get(edit)
    assert 'name="consensus_method"' in form.text and 'name="adjudication_threshold"' in form.text
    with store.session() as session:
        values = ProjectForm.of(project_record(session.get(ProjectRow, world.project_id)))
    data = {**values.model_dump(exclude={"rationale_required"}), "csrf_token": csrf}

    refused = client.post(
        edit, data={**data, "consensus_method": "average", "adjudication_threshold": "1.5"}
    )
    assert refused.status_code == 400
    assert re.search(
        r'id="consensus_method-error">Input should be &#39;majority&#39; or &#39;dawid_skene&#39;',
        refused.text,
    )
    assert 'id="adjudication_threshold-error">Input should be less than or equal to 1' in (
        refused.text
    )
    assert 'value="1.5"' in refused.text  # what was typed is kept
    not_a_number = client.post(edit, data={**data, "adjudication_threshold": "high"})
    assert "unable to parse string as a number" in not_a_number.text

    saved = client.post(
        edit, data={**data, "consensus_method": "majority", "adjudication_threshold": "0.55"}
    )
    assert saved.status_code == 303
    with store.session() as session:
        row = session.get(ProjectRow, world.project_id)
        assert row is not None
        assert (row.consensus_method, row.adjudication_threshold) == ("majority", 0.55)
    assert "consensus by majority, adjudicated below 0.55" in text_of(
        client.get(f"/admin/projects/{world.project_id}").text
    )


def test_a_project_of_imported_pairs_only_has_a_quality_page_and_report(
    store: Store, client: TestClient, tmp_path: Path
) -> None:
    from tutelage.interchange import import_file
    from tutelage.records import Project
    from tutelage.workspace.accounts import Actor
    from tutelage.workspace.membership import new_project
    from workspace_fixtures import pairs_file

    with store.session() as session:
        admin = create_user(
            session, email="admin@example.org", password=PASSWORD, handle="admin", role="admin"
        )
        actor = Actor(user_id=admin.id, handle="admin", role="admin", expertise=frozenset())
        project_id = new_project(session, actor=actor, project=Project(name="gov")).id
    import_file(store, path=pairs_file(tmp_path, 5), project="gov", source="vendor")
    csrf = sign_in(client, "admin@example.org")

    report = client.get(f"/api/v1/projects/{project_id}/quality")
    assert report.status_code == 200, report.text
    body = report.json()
    assert body["judgments"]["pairs_without_item"] == 5
    assert [c["label"] for c in body["consensus"]] == ["a"] * 5
    assert all(c["item"] is None and len(c["pair"]) == 2 for c in body["consensus"])
    stored = client.post(
        f"/api/v1/projects/{project_id}/quality/recompute", headers={"X-CSRF-Token": csrf}
    )
    assert stored.status_code == 200, stored.text
    with store.session() as session:
        labels = session.scalars(select(ConsensusLabelRow)).all()
        assert len(labels) == 5 and all(row.item_id is None for row in labels)
    page = client.get(f"/admin/projects/{project_id}/quality")
    assert page.status_code == 200
    words = text_of(page.text)
    assert "5 imported pairs with no workspace item" in words
    assert "undefined" in words
    # Nothing of it reaches the reviewers' queue: a pair with no item has no page.
    queue = client.get(f"/api/v1/projects/{project_id}/adjudications/queue")
    assert queue.status_code == 200 and queue.json() == {"waiting": 0, "items": []}
