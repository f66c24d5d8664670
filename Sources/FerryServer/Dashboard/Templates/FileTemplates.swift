/// Libraries, a folder, its trash and a file's page.
enum FileTemplates {
    static let all: [(String, String)] = [("libraries", libraries), ("folder", folder), ("trash", trash), ("file", file)]

    static let libraries = #"""
    {{<layout}}{{$body}}{{#content}}
    <h1>Libraries</h1>
    <p class="meta" id="storage">Storage: {{storage}}</p>
    {{#hasLibraries}}<ul class="libraries">
    {{#libraries}}<li><a href="{{href}}">{{name}}</a> <span class="meta">{{#sharedBy}}shared with you by {{sharedBy}} ({{role}}), {{/sharedBy}}created {{#created}}{{> time}}{{/created}}</span></li>
    {{/libraries}}
    </ul>{{/hasLibraries}}
    {{^libraries}}<p>No libraries yet. Create one here, or run <code>ferry folder add DIR</code> on a workstation.</p>{{/libraries}}
    <form class="row" method="post" action="/libraries">
    {{> csrf}}
    <label for="new-library">New library</label>
    <input id="new-library" name="name" required maxlength="255">
    <button type="submit">Create library</button>
    </form>
    {{/content}}{{/body}}{{/layout}}
    """#

    static let folder = #"""
    {{<layout}}{{$body}}{{#content}}
    {{> crumbs}}
    <h1>{{heading}}</h1>
    <p class="actions"><a href="{{trashHref}}">Trash</a> <a href="{{membersHref}}">Members</a>{{#retentionHref}} <a href="{{retentionHref}}">Retention</a>{{/retentionHref}}</p>
    <div id="listing" data-live="{{eventsHref}}">
    <div class="table-wrap">
    <table>
    <caption class="visually-hidden">Contents of {{heading}}</caption>
    <thead><tr><th scope="col">Name</th><th scope="col">Size</th><th scope="col">Modified</th></tr></thead>
    <tbody>
    {{#entries}}<tr><td><span class="icon {{kind}}" aria-hidden="true"></span><a href="{{href}}">{{name}}</a>{{#target}} <span class="meta">→ {{target}}</span>{{/target}}</td><td>{{size}}</td><td>{{#modified}}{{> time}}{{/modified}}</td></tr>
    {{/entries}}
    </tbody>
    </table>
    </div>
    {{^entries}}<p>This folder is empty.</p>{{/entries}}
    <p class="actions">{{#firstHref}}<a href="{{firstHref}}">First page</a>{{/firstHref}}{{#nextHref}}<a href="{{nextHref}}" rel="next">Next page</a>{{/nextHref}}</p>
    </div>
    {{#readOnly}}<p class="hint">This library is shared with you to read only.</p>{{/readOnly}}
    {{^readOnly}}<section aria-labelledby="upload-heading">
    <h2 id="upload-heading">Upload</h2>
    <form id="upload" data-upload="{{uploadHref}}" data-directory="{{directory}}">
    <div class="dropzone" id="dropzone">
    <label for="upload-input">Upload files</label>
    <input id="upload-input" type="file" multiple>
    <p class="hint">or drop files here. Large files are streamed; a file with the same name becomes its new version.</p>
    </div>
    <p class="nojs hint">Uploading needs JavaScript.</p>
    <ul id="upload-progress" aria-live="polite"></ul>
    </form>
    </section>{{/readOnly}}
    {{/content}}{{/body}}{{/layout}}
    """#

    static let trash = #"""
    {{<layout}}{{$body}}{{#content}}
    {{> crumbs}}
    <h1>{{heading}}</h1>
    <p class="actions"><a href="{{folderHref}}">Back to the folder</a></p>
    <div class="table-wrap">
    <table>
    <caption class="visually-hidden">Deleted files</caption>
    <thead><tr><th scope="col">Name</th><th scope="col">Deleted</th><th scope="col">By</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
    <tbody>
    {{#entries}}<tr><td>{{#isDirectory}}<span class="icon directory" aria-hidden="true"></span><a href="{{browseHref}}">{{name}}</a>{{/isDirectory}}{{^isDirectory}}{{name}}{{/isDirectory}}</td><td>{{#deleted}}{{> time}}{{/deleted}}</td><td>{{device}}</td>
    <td><form class="inline" method="post" action="{{restoreHref}}">{{> csrf}}<input type="hidden" name="path" value="{{path}}"><input type="hidden" name="deleted" value="{{version}}"><button type="submit">Restore</button></form></td></tr>
    {{/entries}}
    </tbody>
    </table>
    </div>
    {{^entries}}<p>Nothing deleted here.</p>{{/entries}}
    {{#nextHref}}<p><a href="{{nextHref}}" rel="next">Next page</a></p>{{/nextHref}}
    {{/content}}{{/body}}{{/layout}}
    """#

    static let file = #"""
    {{<layout}}{{$body}}{{#content}}
    {{> crumbs}}
    <h1>{{name}}</h1>
    {{#deleted}}<p class="notice">This file is in the trash. Restore one of its versions to bring it back.</p>{{/deleted}}
    {{#live}}<p class="actions">{{^isSymlink}}<a href="{{downloadHref}}">Download</a>{{/isSymlink}} <span class="meta">{{size}}, modified {{#modified}}{{> time}}{{/modified}}</span></p>{{/live}}
    {{#isSymlink}}<p>A symbolic link to <code>{{target}}</code>.</p>{{/isSymlink}}
    {{#imageHref}}<figure class="preview"><img src="{{imageHref}}" alt="Preview of {{name}}"></figure>{{/imageHref}}
    {{#text}}<section aria-label="Preview"><pre class="preview">{{text}}</pre>{{#truncated}}<p class="meta">The first 64 KiB are shown; download the file for the rest.</p>{{/truncated}}</section>{{/text}}
    <div class="table-wrap">
    <table>
    <caption>History</caption>
    <thead><tr><th scope="col">Version</th><th scope="col">Time</th><th scope="col">Size</th><th scope="col">Device</th><th scope="col"><span class="visually-hidden">Action</span></th></tr></thead>
    <tbody>
    {{#versions}}<tr><td>{{version}}</td><td>{{#time}}{{> time}}{{/time}}</td><td>{{size}}</td><td>{{device}}</td>
    <td>{{#current}}current{{/current}}{{#isDeletion}}deleted{{/isDeletion}}{{#restorable}}<form class="inline" method="post" action="{{restoreHref}}">{{> csrf}}<input type="hidden" name="path" value="{{path}}"><input type="hidden" name="version" value="{{version}}"><button type="submit">Restore</button></form>{{/restorable}}</td></tr>
    {{/versions}}
    </tbody>
    </table>
    </div>
    {{#olderHref}}<p><a href="{{olderHref}}" rel="next">Older versions</a></p>{{/olderHref}}
    {{#live}}<form method="post" action="{{deleteHref}}" data-confirm="Move {{name}} to the trash?">{{> csrf}}<input type="hidden" name="path" value="{{path}}"><button type="submit" class="danger">Delete</button></form>{{/live}}
    {{/content}}{{/body}}{{/layout}}
    """#
}
