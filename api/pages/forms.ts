// What the pages' form handlers share: telling a user's mistake (shown on the form) from a fault (500), and
// showing each mistake beside its field (aria-invalid, aria-describedby, focus) with what the user typed.
import type { FastifyReply } from 'fastify';
import { HttpError } from '../errors.js';
import { html, type SafeHtml } from './html.js';

/** A 4xx HttpError to show on the form, with its headers (Retry-After) put on the reply; anything else is rethrown. */
export function formError(err: unknown, reply: FastifyReply): HttpError {
  if (!(err instanceof HttpError) || err.statusCode >= 500) throw err;
  reply.headers(err.headers);
  return err;
}

/** A message as a sentence: capital first letter. */
export const sentence = (text: string): string => (text ? `${text[0]!.toUpperCase()}${text.slice(1)}` : text);

/** A mistake in one field, in words for the user. */
export class FieldError extends HttpError {
  constructor(
    readonly field: string,
    message: string,
    statusCode = 400,
  ) {
    super(statusCode, message);
    this.name = 'FieldError';
  }
}

/** A form shown again: what the user typed (never passwords) and the mistake, on a field or on the whole form. */
export interface FormState {
  values: Record<string, string | undefined>;
  field?: string;
  error?: string;
}

export const emptyForm = (values: Record<string, string | undefined> = {}): FormState => ({ values });

/** The state to show after `err`: on its field when it names one, else on `fallbackField`, else on the form. */
export function failedForm(
  err: HttpError,
  values: Record<string, string | undefined>,
  fallbackField?: string,
): FormState {
  const field = err instanceof FieldError ? err.field : fallbackField;
  return { values, field, error: sentence(err.message) };
}

/** The attributes of a field's input: invalid, described by its error (and hint), focused when it has the error. */
export function fieldAttrs(form: FormState, name: string, hintId?: string): SafeHtml {
  const invalid = form.field === name && form.error !== undefined;
  const describedBy = [invalid ? `${name}-error` : undefined, hintId].filter(Boolean).join(' ');
  return html`${invalid ? html` aria-invalid="true" autofocus` : ''}${describedBy ? html` aria-describedby="${describedBy}"` : ''}`;
}

/** The error beside a field, when it has one. */
export function fieldError(form: FormState, name: string): SafeHtml | '' {
  return form.field === name && form.error !== undefined
    ? html`<p class="field-error" id="${name}-error">${form.error}</p>`
    : '';
}

/** The error of the whole form (not of one field), announced to screen readers. */
export function formErrorBox(form: FormState): SafeHtml | '' {
  return form.error !== undefined && form.field === undefined
    ? html`<p class="error" role="alert" id="form-error" tabindex="-1" autofocus>${form.error}</p>`
    : '';
}

/** The new password, typed twice: the password change and the reset forms. */
export function newPasswordFields(form: FormState): SafeHtml {
  return html`<label for="new_password">New password</label>
        <input id="new_password" name="new_password" type="password" autocomplete="new-password" required minlength="8" maxlength="1024"${fieldAttrs(form, 'new_password')}>
        ${fieldError(form, 'new_password')}
        <label for="confirm_password">New password again</label>
        <input id="confirm_password" name="confirm_password" type="password" autocomplete="new-password" required minlength="8" maxlength="1024"${fieldAttrs(form, 'confirm_password')}>
        ${fieldError(form, 'confirm_password')}`;
}
