//! The routes the workspace reads its screens from: the lists of the open lines and their
//! counts, the read marker, the lists of leads, counterparties and orders with their search,
//! the channel's state, and the change stamp it polls. Each is one call of [`vk_core::Core`].

use vk_core::dialog::{DialogList, Page};
use vk_core::directory::Subject;
use vk_core::lead::Communication;
use vk_core::{Error, ids};

use crate::{Answer, Call, Refusal, Response, json};

impl Call<'_, '_> {
    /// `GET /api/dialogs?status=`: `open` (the default: the queue and the caller's own),
    /// `queue`, `mine`, `all`, `spam`, `finished`.
    pub(crate) fn list_dialogs(&self) -> Answer {
        let reader = self.caller()?;
        let list = match self.query("status").as_deref().unwrap_or("open") {
            "open" => DialogList::Open,
            "queue" => DialogList::Queue,
            "mine" => DialogList::Mine,
            "all" => DialogList::All,
            "spam" => DialogList::Spam,
            "finished" => DialogList::Finished,
            other => {
                return Err(Refusal::new(
                    400,
                    "invalid-query",
                    format!(
                        "`status` must be open, queue, mine, all, spam or finished, not {other:?}"
                    ),
                ));
            }
        };
        let (after, limit) = self.page()?;
        let page = self.core.dialogs(reader, list, after.as_deref(), limit)?;
        Ok(Response::json(
            200,
            &json::dialogs(&page, reader.employee()),
        ))
    }

    /// `GET /api/dialogs/counts`.
    pub(crate) fn dialog_counts(&self) -> Answer {
        let reader = self.caller()?;
        let counts = self.core.dialog_counts(reader)?;
        Ok(Response::json(200, &json::dialog_counts(&counts)))
    }

    /// `POST /api/dialogs/{id}/read`.
    pub(crate) fn mark_read(&self, id: &str) -> Answer {
        let actor = self.employee()?;
        let dialog = self.core.mark_read(actor, ids::dialog(id)?)?;
        Ok(Response::json(200, &json::dialog(&dialog, Some(actor))))
    }

    /// `GET /api/leads?q=&after=&limit=`.
    pub(crate) fn list_leads(&self) -> Answer {
        self.list_documents(
            "leads",
            |r, q, a, l| self.core.leads(r, q, a, l),
            json::lead,
        )
    }

    /// `GET /api/counterparties?q=&after=&limit=`.
    pub(crate) fn list_counterparties(&self) -> Answer {
        self.list_documents(
            "counterparties",
            |r, q, a, l| self.core.counterparties(r, q, a, l),
            json::counterparty,
        )
    }

    /// `GET /api/orders?q=&after=&limit=`.
    pub(crate) fn list_orders(&self) -> Answer {
        self.list_documents(
            "orders",
            |r, q, a, l| self.core.orders(r, q, a, l),
            json::order,
        )
    }

    /// A page of documents whose name holds `q`, as `{field: [...], "next"}`.
    fn list_documents<T>(
        &self,
        field: &str,
        list: impl Fn(Subject, &str, Option<&str>, u32) -> Result<Page<(T, Communication)>, Error>,
        render: impl Fn(&T, &Communication) -> serde_json::Value,
    ) -> Answer {
        let reader = self.caller()?;
        let (after, limit) = self.page()?;
        let page = list(reader, &self.search(), after.as_deref(), limit)?;
        Ok(Response::json(200, &json::documents(field, &page, render)))
    }

    /// `GET /api/channel` (admin): the channel's state for the settings page.
    pub(crate) fn channel_state(&self) -> Answer {
        self.admin()?;
        let state = self.core.channel_state()?;
        Ok(Response::json(200, &json::channel_state(&state)))
    }

    /// `GET /api/changes` (anyone signed in): the change stamp, as an `ETag` too, so that a
    /// workspace polling with `If-None-Match` gets an empty `304` while nothing changed.
    pub(crate) fn changes(&self) -> Answer {
        self.caller()?;
        let stamp = self.core.change_stamp()?;
        Ok(Response::json(200, &json::change_stamp(&stamp))
            .tagged(self.request, format!("\"{stamp}\"")))
    }

    /// The search text `q` of a list (none: everything).
    fn search(&self) -> String {
        self.query("q").unwrap_or_default()
    }
}
