import "./styles/base.css";
import "./styles/app.css";
import "./styles/pages.css";
import "./styles/campaigns.css";
import { render } from "preact";
import { CampaignList } from "./components/campaigns/CampaignList";
import { CampaignPage } from "./components/campaigns/CampaignPage";
import { CampaignsApi } from "./components/campaigns/api";
import { Shell, loginRedirect, readPageBoot } from "./components/pages/Shell";
import { Api } from "./lib/api";
import { initTheme } from "./lib/theme";

initTheme();
const boot = readPageBoot();
// The view names the campaign of /dashboard/campaigns/<id>/; none on the list.
const campaignId = (() => {
  try {
    const raw = JSON.parse(document.getElementById("arbor-boot")?.textContent ?? "{}") as { campaign_id?: unknown };
    return typeof raw.campaign_id === "string" ? raw.campaign_id : null;
  } catch {
    return null;
  }
})();
const api = new CampaignsApi(new Api(boot.api_base, loginRedirect), boot.api_base);
const root = document.getElementById("app");
if (root) {
  render(
    <Shell boot={boot} title={campaignId ? "Campaign" : "Campaigns"}>
      {campaignId ? <CampaignPage api={api} id={campaignId} /> : <CampaignList api={api} />}
    </Shell>,
    root,
  );
}
