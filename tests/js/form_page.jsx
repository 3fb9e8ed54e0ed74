// A frontend as the README describes one: fetch a form's render payload, draw it with
// react-jsonschema-form (its AJV 8 validator, draft 2020-12), and POST the formData to the API.
// Bundled by build_page.mjs; driven in headless Chromium by drive_form.mjs.
//
//   form_page.html?form=credit_limit_adjustment&lang=en&user=browser-test
//
// Progress is published on <body data-state="loading|ready|invalid|submitting|submitted|error">
// and in window.__lowcode (the response of the submission, RJSF's errors, ...).
import React, { useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import Form from "@rjsf/core";
import { customizeValidator } from "@rjsf/validator-ajv8";
import Ajv2020 from "ajv/dist/2020.js";

const params = new URLSearchParams(window.location.search);
const formKey = params.get("form");
const language = params.get("lang") || "en";
const validator = customizeValidator({ AjvClass: Ajv2020 });

function publish(state, details = {}) {
  window.__lowcode = { state, ...details };
  document.body.dataset.state = state;
}

function App() {
  const [payload, setPayload] = useState(null);
  useEffect(() => {
    fetch(`/api/v1/forms/${encodeURIComponent(formKey)}/schema`, { headers: { "Accept-Language": language } })
      .then((response) => (response.ok ? response.json() : Promise.reject(new Error(`schema: HTTP ${response.status}`))))
      .then(setPayload)
      .catch((error) => publish("error", { error: String(error) }));
  }, []);
  useEffect(() => {
    if (payload) publish("ready", { title: payload.title });
  }, [payload]);
  if (!payload) return <p>Loading…</p>;

  async function submit({ formData }) {
    const sent = JSON.stringify(formData);
    publish("submitting", { sent });
    try {
      const response = await fetch(`/api/v1/forms/${encodeURIComponent(formKey)}/records`, {
        method: "POST",
        headers: { "Content-Type": "application/json", "Accept-Language": language, "X-User": params.get("user") || "browser-test" },
        body: sent,
      });
      publish("submitted", { status: response.status, body: await response.text(), sent });
    } catch (error) {
      publish("error", { error: String(error), sent });
    }
  }

  return (
    <>
      <h1>{payload.title}</h1>
      <Form
        schema={payload.schema}
        uiSchema={payload.uiSchema}
        validator={validator}
        onSubmit={submit}
        onError={(errors) => publish("invalid", { errors: errors.map((error) => error.stack) })}
      />
    </>
  );
}

createRoot(document.getElementById("app")).render(<App />);
