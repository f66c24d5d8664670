/// Devices, conflicts, tasks, webhooks and the administrator's page.
enum AccountTemplates {
    static let all: [(String, String)] = [
        ("devices", devices), ("conflicts", conflicts), ("tasks", tasks), ("task", task), ("webhooks", webhooks), ("admin", admin),
    ]

    static let devices = #"""
    {{<layout}}{{$body}}{{#content}}
    <h1>Devices</h1>
    {{^devices}}<p>No devices yet: run <code>ferry login</code> on a workstation.</p>{{/devices}}
    <div class="table-wrap">
    <table>
    <caption class="visually-hidden">Your devices</caption>
    <thead><tr><th scope="col">Name</th><th scope="col">Last seen</th><th scope="col" class="hide-narrow">Registered</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
    <tbody>
    {{#devices}}<tr><td>{{name}}</td><td>{{#lastSeen}}{{> time}}{{/lastSeen}}{{^lastSeen}}never{{/lastSeen}}</td><td class="hide-narrow">{{#registered}}{{> time}}{{/registered}}</td>
    <td>{{#active}}<form class="inline" method="post" action="{{revokeHref}}" data-confirm="Revoke {{name}}? Its token stops working at once, and it must sign in again to sync.">{{> csrf}}<button type="submit" class="danger">Revoke</button></form>{{/active}}{{^active}}revoked {{revoked}}{{/active}}</td></tr>
    {{/devices}}
    </tbody>
    </table>
    </div>
    {{/content}}{{/body}}{{/layout}}
    """#

    static let conflicts = #"""
    {{<layout}}{{$body}}{{#content}}
    <h1>Conflicts</h1>
    {{^conflicts}}<p>No open conflicts.</p>{{/conflicts}}
    {{#conflicts}}<article class="conflict">
    <h2><a href="{{fileHref}}">{{path}}</a> <span class="meta">in {{library}}</span></h2>
    <p>Both sides changed it. <strong>Theirs</strong>: version {{theirsVersion}}, {{theirsSize}}, from {{theirsDevice}}. <strong>Mine</strong>: kept as <a href="{{copyHref}}">{{copyPath}}</a>, {{mineSize}}, from {{mineDevice}}. Found {{#detected}}{{> time}}{{/detected}}.</p>
    <form class="buttons" method="post" action="{{resolveHref}}">{{> csrf}}
    <button type="submit" name="keep" value="mine">Keep mine</button>
    <button type="submit" name="keep" value="theirs">Keep theirs</button>
    <button type="submit" name="keep" value="both">Keep both</button>
    </form>
    </article>
    {{/conflicts}}
    {{/content}}{{/body}}{{/layout}}
    """#

    static let tasks = #"""
    {{<layout}}{{$body}}{{#content}}
    <h1>Tasks</h1>
    <form class="row" method="post" action="/tasks">
    {{> csrf}}
    <label for="task-title">Title</label>
    <input id="task-title" name="title" required maxlength="500">
    {{#hasProjects}}<label for="task-project">Project</label>
    <select id="task-project" name="project"><option value="">Inbox</option>{{#projects}}<option value="{{id}}">{{name}}</option>{{/projects}}</select>{{/hasProjects}}
    <button type="submit">Create task</button>
    </form>
    <div class="status-columns">
    {{#columns}}<section aria-labelledby="status-{{key}}">
    <h2 id="status-{{key}}">{{label}}</h2>
    {{^tasks}}<p class="meta">None.</p>{{/tasks}}
    <ul>{{#tasks}}<li><a href="{{href}}">{{title}}</a>{{#due}} <span class="meta">due {{due}}</span>{{/due}}</li>{{/tasks}}</ul>
    {{#moreHref}}<p><a href="{{moreHref}}">More</a></p>{{/moreHref}}
    </section>
    {{/columns}}
    </div>
    {{/content}}{{/body}}{{/layout}}
    """#

    static let task = #"""
    {{<layout}}{{$body}}{{#content}}
    {{> crumbs}}
    <h1>{{title}}</h1>
    <p class="meta">{{statusLabel}} · {{project}} · created by {{createdBy}}{{#assignees}} · assigned to {{assignees}}{{/assignees}}{{#due}} · due {{due}}{{/due}}</p>
    {{#about}}<p>{{about}}</p>{{/about}}
    <h2>Attachments</h2>
    {{^attachments}}<p>No attachments yet.</p>{{/attachments}}
    <div class="table-wrap">
    <table>
    <caption class="visually-hidden">Attachments</caption>
    <thead><tr><th scope="col">File</th><th scope="col">Version</th><th scope="col">Size</th><th scope="col" class="hide-narrow">Added by</th><th scope="col"><span class="visually-hidden">Actions</span></th></tr></thead>
    <tbody>
    {{#attachments}}<tr><td>{{path}} <span class="meta">in {{library}}</span></td><td>{{version}}{{#follow}} (follows the file){{/follow}}</td><td>{{size}}</td><td class="hide-narrow">{{addedBy}}</td>
    <td class="buttons"><a href="{{downloadHref}}">Download</a><form class="inline" method="post" action="{{removeHref}}">{{> csrf}}<button type="submit">Remove</button></form></td></tr>
    {{/attachments}}
    </tbody>
    </table>
    </div>
    <h2>Attach a synced file</h2>
    <form class="stack" method="post" action="{{attachHref}}">
    {{> csrf}}
    <label for="attach-library">Library</label>
    <select id="attach-library" name="library" required>{{#libraries}}<option value="{{id}}">{{name}}</option>{{/libraries}}</select>
    <label for="attach-path">Path</label>
    <input id="attach-path" name="path" required placeholder="folder/report.pdf">
    <label class="check"><input type="checkbox" name="follow" value="yes"> Follow the file's later versions</label>
    <button type="submit">Attach file</button>
    </form>
    <h2>Edit</h2>
    <form class="stack" method="post" action="{{updateHref}}">
    {{> csrf}}
    <label for="edit-title">Title</label>
    <input id="edit-title" name="title" value="{{title}}" required maxlength="500">
    <label for="edit-status">Status</label>
    <select id="edit-status" name="status">{{#statuses}}<option value="{{value}}"{{#selected}} selected{{/selected}}>{{label}}</option>{{/statuses}}</select>
    <label for="edit-due">Due date</label>
    <input id="edit-due" name="due_date" type="date" value="{{dueValue}}">
    <label for="edit-description">Description</label>
    <textarea id="edit-description" name="description">{{description}}</textarea>
    <button type="submit">Save task</button>
    </form>
    {{/content}}{{/body}}{{/layout}}
    """#

    static let webhooks = #"""
    {{<layout}}{{$body}}{{#content}}
    <h1>Webhooks</h1>
    {{#secret}}<div class="notice" role="status"><p>Webhook added. Its signing secret, shown only this once:</p><p><code>{{secret}}</code></p></div>{{/secret}}
    {{^webhooks}}<p>No webhooks yet.</p>{{/webhooks}}
    {{#webhooks}}<section class="webhook" aria-labelledby="webhook-{{id}}">
    <h2 id="webhook-{{id}}">{{url}}</h2>
    <p class="meta">Events: {{events}} · {{#active}}active{{/active}}{{^active}}<span class="bad">disabled</span>{{#reason}}: {{reason}}{{/reason}}{{/active}}</p>
    <div class="buttons">
    <form class="inline" method="post" action="{{testHref}}">{{> csrf}}<button type="submit">Send test</button></form>
    {{^active}}<form class="inline" method="post" action="{{enableHref}}">{{> csrf}}<button type="submit">Enable</button></form>{{/active}}
    <form class="inline" method="post" action="{{removeHref}}" data-confirm="Remove the webhook to {{url}}?">{{> csrf}}<button type="submit" class="danger">Remove</button></form>
    </div>
    {{^deliveries}}<p class="meta">No deliveries yet.</p>{{/deliveries}}
    <div class="table-wrap">
    <table>
    <caption>Delivery log of {{url}}</caption>
    <thead><tr><th scope="col">Event</th><th scope="col">State</th><th scope="col">Attempts</th><th scope="col">Status</th><th scope="col">Latency</th><th scope="col" class="hide-narrow">Time</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
    <tbody>
    {{#deliveries}}<tr><td>{{event}}</td><td>{{state}}</td><td>{{attempts}}</td><td>{{status}}</td><td>{{latency}}</td><td class="hide-narrow">{{#time}}{{> time}}{{/time}}</td>
    <td><form class="inline" method="post" action="{{redeliverHref}}">{{> csrf}}<button type="submit">Redeliver</button></form></td></tr>
    {{/deliveries}}
    </tbody>
    </table>
    </div>
    {{#moreHref}}<p><a href="{{moreHref}}">All deliveries</a></p>{{/moreHref}}
    {{#olderHref}}<p><a href="{{olderHref}}" rel="next">Older deliveries</a></p>{{/olderHref}}
    </section>
    {{/webhooks}}
    {{#showForm}}<h2>Add a webhook</h2>
    <form class="stack" method="post" action="/webhooks">
    {{> csrf}}
    <label for="webhook-url">URL</label>
    <input id="webhook-url" name="url" type="url" required placeholder="https://example.com/hooks/ferry">
    <label for="webhook-events">Events</label>
    <input id="webhook-events" name="events" required value="file.*" aria-describedby="webhook-events-help">
    <p id="webhook-events-help" class="hint">Separated by commas: file.*, task.*, device.*, or names such as file.created and task.attachment.added.</p>
    <button type="submit">Add webhook</button>
    </form>{{/showForm}}
    {{/content}}{{/body}}{{/layout}}
    """#

    static let admin = #"""
    {{<layout}}{{$body}}{{#content}}
    <h1>Server</h1>
    <h2>Health</h2>
    <dl class="facts">
    <dt>Status</dt><dd class="{{#healthy}}good{{/healthy}}{{^healthy}}bad{{/healthy}}">{{status}}</dd>
    <dt>Database</dt><dd>{{database}}</dd>
    <dt>Disk</dt><dd class="{{^diskOK}}bad{{/diskOK}}">{{diskFree}} free (reserve {{diskReserve}})</dd>
    <dt>Webhook dispatcher</dt><dd>{{dispatcher}}</dd>
    </dl>
    <h2>Storage</h2>
    <p>{{stored}} stored in {{chunks}} chunks (each stored once, whoever uploaded it).</p>
    <div class="table-wrap">
    <table>
    <caption>Users</caption>
    <thead><tr><th scope="col">User</th><th scope="col">Administrator</th><th scope="col">Uploaded</th><th scope="col">Quota</th><th scope="col" class="hide-narrow">Created</th></tr></thead>
    <tbody>
    {{#users}}<tr><td>{{name}}</td><td>{{#admin}}yes{{/admin}}{{^admin}}no{{/admin}}</td><td>{{stored}} <span class="meta">({{chunks}} chunks)</span></td><td>{{quota}}</td><td class="hide-narrow">{{#created}}{{> time}}{{/created}}</td></tr>
    {{/users}}
    </tbody>
    </table>
    </div>
    {{/content}}{{/body}}{{/layout}}
    """#
}
