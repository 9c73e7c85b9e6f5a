"""Seeds a fresh `vk-host serve` for the schema-driven test (tests/schema/run), over HTTP,
and checks every answer against docs/openapi.json.

The seeding goes through each success the fuzzing seldom reaches (signing in and out, a
sign-in link, sending, inviting, goods added, changed and removed, a conversion, an
unchanged change stamp's `304`, VK's callbacks), each a schemathesis case whose answer must
have its expected status and pass the same conformance checks as the fuzzing: a documented
status, content type and headers, and a body the response schema accepts.

Usage: seed.py BASE_URL ADMIN_TOKEN DOCUMENT DICTIONARY_DIR. It writes the ids the fuzzing
should use as dictionaries (`<kind>.dict`, one quoted value a line) into DICTIONARY_DIR and
prints the employee's token.
"""

import sys
from pathlib import Path

import schemathesis
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
]
GROUP = 218765432
SECRET = "schema-test-secret"
CONFIRMATION = "c0nf1rm"


class Api:
    def __init__(self, base, document):
        self.base = base
        self.schema = schemathesis.openapi.from_path(document)

    def call(self, method, path, status, token=None, body=None, headers=None, **ids):
        """One request as a case of the document's operation `method path`: fails unless it
        is answered `status`, conformant; returns the answer."""
        headers = dict(headers or {})
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        case = self.schema[path][method].Case(
            path_parameters=ids or None,
            headers=headers,
            **({} if body is None else {"body": body, "media_type": "application/json"}),
        )
        answer = case.call(base_url=self.base)
        if answer.status_code != status:
            sys.exit(f"seeding: {method} {path} answered {answer.status_code}, not {status}: "
                     f"{answer.text}")
        case.validate_response(answer, checks=CHECKS)
        return answer

    def callback(self, event, reply):
        answer = self.call("POST", "/settings/integrations/vk-group/call-back", 200, body=event)
        if answer.text != reply:
            sys.exit(f"seeding: a {event['type']} callback answered {answer.text!r}, not {reply!r}")


def message_new(user, vk_id):
    message = {"date": 1767261600, "from_id": user, "id": vk_id, "out": 0, "peer_id": user,
               "text": "Hello", "attachments": [], "conversation_message_id": vk_id,
               "random_id": 0}
    return {"type": "message_new", "group_id": GROUP, "event_id": f"seed-{user}",
            "v": "5.199", "secret": SECRET, "object": {"message": message}}


def main():
    base, admin, document, dictionaries = sys.argv[1:5]
    api = Api(base, document)

    # Two listed employees, a third removed again; the admin's session started and ended.
    employee, colleague, leaving = (
        api.call("POST", "/api/employees", 201, admin, {"name": name}).json()
        for name in ("Schema Operator", "Schema Colleague", "Schema Leaver")
    )
    token = employee["token"]
    api.call("PUT", "/api/settings", 200, admin, {
        "access_token": "vk1.a.schema-test-access-key-0123456789", "secret": SECRET,
        "confirmation": CONFIRMATION, "group_name": "Bakery",
        "employees": [employee["id"], colleague["id"], leaving["id"]]})
    api.call("DELETE", "/api/employees/{id}", 200, admin, id=leaving["id"])
    signed_in = api.call("POST", "/api/sessions", 201, body={"admin_token": admin})
    session = {"Cookie": signed_in.headers["set-cookie"][0].split(";", 1)[0]}
    api.call("GET", "/api/me", 200, headers=session)
    api.call("DELETE", "/api/sessions/current", 200,
             headers={**session, "Sec-Fetch-Site": "same-origin"})
    link = api.call("POST", "/api/employees/{id}/sign-in-link", 201, admin, id=employee["id"])
    api.call("POST", "/api/sessions", 201, body={"code": link.json()["link"].split("#", 1)[1]})

    # A confirmed community and two people writing: two dialogs and their leads.
    api.callback({"type": "confirmation", "group_id": GROUP, "secret": SECRET}, CONFIRMATION)
    api.callback(message_new(1001, 41001), "ok")
    api.callback(message_new(1002, 41002), "ok")
    listed = api.call("GET", "/api/dialogs", 200, admin).json()["dialogs"]
    first, second = (next(d for d in listed if d["peer_id"] == user) for user in (1001, 1002))

    # The first dialog claimed by the employee, who writes and invites the colleague.
    dialog = first["id"]
    api.call("POST", "/api/dialogs/{id}/claim", 200, token, id=dialog)
    api.call("POST", "/api/dialogs/{id}/messages", 201, token, {"text": "Delivery is 350 RUB"},
             id=dialog)
    api.call("POST", "/api/dialogs/{id}/invite", 200, token, {"employees": [colleague["id"]]},
             id=dialog)
    api.call("POST", "/api/outbox/flush", 200, admin)

    # Goods on both leads (one item changed, one removed), the second lead converted.
    lead = first["lead_id"]
    item, spare = (
        api.call("POST", "/api/leads/{id}/items", 201, token, goods, id=lead).json()["item"]["id"]
        for goods in ({"name": "Cake", "sku": "CAKE-1", "quantity": 2, "price": "150.00"},
                      {"name": "Candles", "quantity": "1.5", "price": 200})
    )
    api.call("PATCH", "/api/leads/{id}/items/{item}", 200, token, {"quantity": "3"},
             id=lead, item=item)
    api.call("DELETE", "/api/leads/{id}/items/{item}", 200, token, id=lead, item=spare)
    api.call("POST", "/api/leads/{id}/items", 201, token,
             {"name": "Bread", "quantity": 1, "price": 80}, id=second["lead_id"])
    conversion = api.call("POST", "/api/leads/{id}/convert", 200, token, id=second["lead_id"])
    counterparty, order = conversion.json()["counterparty_id"], conversion.json()["order_id"]

    # Live updates: the stamp, and `304` while it holds.
    stamp = api.call("GET", "/api/changes", 200, token).headers["etag"][0]
    api.call("GET", "/api/changes", 304, token, headers={"If-None-Match": stamp})

    values = {
        "dialogs": [first["id"], second["id"]],
        "leads": [lead, second["lead_id"]],
        "items": [item],
        "employees": [employee["id"], colleague["id"]],
        "counterparties": [counterparty],
        "orders": [order],
    }
    for kind, ids in values.items():
        Path(dictionaries, f"{kind}.dict").write_text("".join(f'"{value}"\n' for value in ids))
    print(token)


if __name__ == "__main__":
    main()
