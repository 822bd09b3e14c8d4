//! What the simulator answers to one reset call: [`Step`], scripted per task.

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// One scripted answer of the reset endpoint. Scripts are consumed one step per call; the
/// default step (initially [`Step::Succeed`]) answers once a task's script is used up.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(into = "StepJson", try_from = "StepJson")]
pub enum Step {
    /// 200 `{"message": "Reset Success"}`: the reset executes.
    Succeed,
    /// A service error: `status` with `{"error_code": code, "error_msg": message}`; nothing
    /// executes. See [`Step::task_list_empty`], [`Step::not_scheduled`], [`Step::server_error`].
    Fail {
        /// HTTP status.
        status: u16,
        /// `error_code`.
        code: String,
        /// `error_msg`.
        message: String,
    },
    /// 500 with an empty body (a proxy or a crashed backend): whether it executed is unknown.
    ServerErrorNoBody,
    /// An HTML error page with this status, as gateways and proxies send.
    Html {
        /// HTTP status.
        status: u16,
    },
    /// 429 `APIGW.0308`: throttled by the gateway, nothing executes.
    Throttle,
    /// 401 `APIGW.0301` from the gateway, whatever the credentials: nothing executes.
    Unauthorized,
    /// Wait, then answer with the inner step (the reset, if any, happens after the wait).
    Delay(Duration, Box<Step>),
    /// Read the request, then close the connection without answering; nothing executes.
    DropConnection,
    /// Execute the reset, then close the connection without answering: the ambiguous case.
    DropAfterExecute,
    /// Any status, content type and body (garbage, huge bodies, odd JSON); nothing executes
    /// unless the status is 2xx.
    Raw {
        /// HTTP status.
        status: u16,
        /// `Content-Type` header; none when empty.
        content_type: String,
        /// Body, sent as is.
        body: String,
    },
}

impl Step {
    /// A service error with this status, code and message.
    pub fn fail(status: u16, code: &str, message: &str) -> Self {
        Self::Fail {
            status,
            code: code.to_owned(),
            message: message.to_owned(),
        }
    }

    /// 400 `FDI.3150` "The task list is empty.", as documented.
    pub fn task_list_empty() -> Self {
        Self::fail(400, "FDI.3150", "The task list is empty.")
    }

    /// 404 `FDI.3083`, as documented.
    pub fn not_scheduled() -> Self {
        Self::fail(
            404,
            "FDI.3083",
            "One or more scheduled tasks are not configured with scheduled plans.",
        )
    }

    /// 500 with a service error body (`FDI.3000`): the service failed before executing.
    pub fn server_error() -> Self {
        Self::fail(500, "FDI.3000", "Internal server error.")
    }

    /// Wait `delay`, then answer with `then`.
    pub fn delay(delay: Duration, then: Step) -> Self {
        Self::Delay(delay, Box::new(then))
    }
}

/// The JSON form of a [`Step`] for the control API: `{"kind": "succeed"}`,
/// `{"kind": "fail", "status": 400, "code": "FDI.3150", "message": "..."}`,
/// `{"kind": "delay", "ms": 500, "then": {"kind": "succeed"}}`, ...
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "camelCase", deny_unknown_fields)]
enum StepJson {
    Succeed,
    Fail {
        status: u16,
        code: String,
        message: String,
    },
    ServerErrorNoBody,
    Html {
        status: u16,
    },
    Throttle,
    Unauthorized,
    Delay {
        ms: u64,
        then: Box<StepJson>,
    },
    DropConnection,
    DropAfterExecute,
    Raw {
        status: u16,
        #[serde(default, rename = "contentType")]
        content_type: String,
        #[serde(default)]
        body: String,
    },
}

impl From<Step> for StepJson {
    fn from(step: Step) -> Self {
        match step {
            Step::Succeed => Self::Succeed,
            Step::Fail {
                status,
                code,
                message,
            } => Self::Fail {
                status,
                code,
                message,
            },
            Step::ServerErrorNoBody => Self::ServerErrorNoBody,
            Step::Html { status } => Self::Html { status },
            Step::Throttle => Self::Throttle,
            Step::Unauthorized => Self::Unauthorized,
            Step::Delay(delay, then) => Self::Delay {
                ms: u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                then: Box::new((*then).into()),
            },
            Step::DropConnection => Self::DropConnection,
            Step::DropAfterExecute => Self::DropAfterExecute,
            Step::Raw {
                status,
                content_type,
                body,
            } => Self::Raw {
                status,
                content_type,
                body,
            },
        }
    }
}

impl TryFrom<StepJson> for Step {
    type Error = String;

    fn try_from(json: StepJson) -> Result<Self, Self::Error> {
        let status = |s: u16| {
            if (100..=599).contains(&s) {
                Ok(s)
            } else {
                Err(format!("status {s} is not an HTTP status"))
            }
        };
        Ok(match json {
            StepJson::Succeed => Self::Succeed,
            StepJson::Fail {
                status: s,
                code,
                message,
            } => Self::Fail {
                status: status(s)?,
                code,
                message,
            },
            StepJson::ServerErrorNoBody => Self::ServerErrorNoBody,
            StepJson::Html { status: s } => Self::Html { status: status(s)? },
            StepJson::Throttle => Self::Throttle,
            StepJson::Unauthorized => Self::Unauthorized,
            StepJson::Delay { ms, then } => {
                Self::Delay(Duration::from_millis(ms), Box::new((*then).try_into()?))
            }
            StepJson::DropConnection => Self::DropConnection,
            StepJson::DropAfterExecute => Self::DropAfterExecute,
            StepJson::Raw {
                status: s,
                content_type,
                body,
            } => Self::Raw {
                status: status(s)?,
                content_type,
                body,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_round_trip_through_their_json_form() {
        let steps = vec![
            Step::Succeed,
            Step::task_list_empty(),
            Step::ServerErrorNoBody,
            Step::Html { status: 502 },
            Step::Throttle,
            Step::Unauthorized,
            Step::delay(Duration::from_millis(250), Step::not_scheduled()),
            Step::DropConnection,
            Step::DropAfterExecute,
            Step::Raw {
                status: 200,
                content_type: "text/plain".into(),
                body: "ok".into(),
            },
        ];
        let json = serde_json::to_string(&steps).expect("serialises");
        let back: Vec<Step> = serde_json::from_str(&json).expect("parses");
        assert_eq!(back, steps);
        let delay: Step =
            serde_json::from_str(r#"{"kind":"delay","ms":5,"then":{"kind":"throttle"}}"#)
                .expect("parses");
        assert_eq!(delay, Step::delay(Duration::from_millis(5), Step::Throttle));
        assert!(serde_json::from_str::<Step>(r#"{"kind":"html","status":1000}"#).is_err());
        assert!(serde_json::from_str::<Step>(r#"{"kind":"explode"}"#).is_err());
    }
}
